// Package selection is the selection-aware training method in plain Go. It
// imports no torch (only loader, for the sequence IDs and the training split,
// and its own ranker selection/rank), so its tests run without libtorch.
//
// # The method
//
// Each iteration of a run:
//
//  1. Sample n sequences of the training split uniformly (Strategy.Sample,
//     n = Config.SampleSize).
//  2. Score them with the model (the trainer's job): for the ranked horizon,
//     the expected gross return E[r] = Σ_b softmax(logits)_b · center_b of
//     each sequence, handed over as Scores.Expected ([n], 1.0 = flat).
//  3. Keep the k with the highest E[r], best first (TopK, method.go): a
//     size-k heap, O(n log k) (SelectTopKTies, rank.TopK). Scores equal to
//     within Scores.TieRTol, the scoring's rounding noise, are ties and go to
//     the lower ticker, then the earlier end day (rank.MergeTies), so the
//     picks do not depend on how the sample was batched.
//  4. Train on those k with equal loss weights (Strategy.Weights: nil).
//
// k is Config.TopK; Strategy.K gives it per iteration. Strategy.Select runs
// step 3 and the extensions; the zero Strategy is the method.
//
// # Extensions
//
// Each is a field of Strategy, off at its zero value (docs/STRATEGIES.md has
// the flags and results), and lives in its own file:
//
//   - selectby.go: SelectBy "loss" ranks by the per-sequence loss
//     (Scores.Loss, hard-example mining); "random" takes a uniform random k
//     (the control arm). Both replace TopK's ranking, not its k.
//   - extras.go: NegativeK also trains on the lowest expected returns;
//     MixRandom on round(MixRandom·k) random sequences of the sample.
//   - perdate.go: Scope "per-date" samples whole cross-sections of random end
//     days and ranks each day's names against each other (TopFrac: a share
//     of each day instead of k/days).
//   - stratify.go: Stratify samples equal counts per sector, ticker or span
//     of end days; Selection.StratumShare reports the selection's shares.
//   - schedule.go: TopKSchedule makes k a function of the iteration.
//   - weights.go: ConfidenceWeight weights each trained sequence's loss by
//     the model's confidence, 1 - entropy/log(B) of its predicted bin
//     distribution (Scores.Logits, [n][B]); ConsistencyBonus by 1 + X·s for
//     s earlier consecutive selections.
//   - pool.go: the index of the training split the sampling extensions draw
//     from.
//
// # The scoring cascade
//
// cascade.go: score the whole sample in a cheap precision, rescore only its
// best M in the reference precision, select the top k of those (ScoreConfig,
// Cascade, MeasureCascade, CheckCascade). The trainer supplies the Scorers
// and, in a run, hands the candidates over as Scores.Candidates.
//
// Indices returned by the selection functions point into the sample: the
// ids and every Scores slice are aligned with it.
package selection
