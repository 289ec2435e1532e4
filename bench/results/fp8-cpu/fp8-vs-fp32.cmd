build/satrain bench-cascade --checkpoint CKPT/best_model.pt --data sp500.h5 --device cpu --threads 1 --score-precision fp8 --reference fp32 --iterations 100 --sample-size 10000 --top-k 100
