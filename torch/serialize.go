package torch

/*
#include <stdlib.h>
#include "satorch.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// ValueKind is the type of a dictionary entry.
type ValueKind int

const (
	ValueNone   ValueKind = C.SAT_V_NONE
	ValueTensor ValueKind = C.SAT_V_TENSOR
	ValueInt    ValueKind = C.SAT_V_INT
	ValueFloat  ValueKind = C.SAT_V_DOUBLE
	ValueString ValueKind = C.SAT_V_STRING
	ValueDict   ValueKind = C.SAT_V_DICT
	ValueBool   ValueKind = C.SAT_V_BOOL
	ValueOther  ValueKind = C.SAT_V_OTHER
)

// Dict is a string-keyed dictionary of tensors, numbers, strings and nested
// dictionaries: the content of a PyTorch .pt file. Save writes it with
// torch::pickle_save, which Python's torch.load opens.
type Dict struct{ c C.sat_dict }

// NewDict returns an empty dictionary.
func NewDict() (*Dict, error) {
	var d C.sat_dict
	if err := check("dict", C.sat_dict_new(&d)); err != nil {
		return nil, err
	}
	return &Dict{c: d}, nil
}

// Free releases the dictionary (tensors it holds stay alive while referenced).
func (d *Dict) Free() {
	if d != nil && d.c != nil {
		C.sat_dict_free(d.c)
		d.c = nil
	}
}

func (d *Dict) set(op, key string, f func(*C.char) *C.sat_error) error {
	if d == nil || d.c == nil {
		return &Error{Op: op, Msg: "nil dict", Kind: KindValue}
	}
	k, free := cString(key)
	defer free()
	return check(op, f(k))
}

// SetTensor stores t under key (sharing its storage).
func (d *Dict) SetTensor(key string, t *Tensor) error {
	if err := t.needValid("dict set " + key); err != nil {
		return err
	}
	return d.set("dict set "+key, key, func(k *C.char) *C.sat_error { return C.sat_dict_set_tensor(d.c, k, t.c) })
}

func (d *Dict) SetInt(key string, v int64) error {
	return d.set("dict set "+key, key, func(k *C.char) *C.sat_error { return C.sat_dict_set_int(d.c, k, C.int64_t(v)) })
}

func (d *Dict) SetFloat(key string, v float64) error {
	return d.set("dict set "+key, key, func(k *C.char) *C.sat_error { return C.sat_dict_set_double(d.c, k, C.double(v)) })
}

func (d *Dict) SetBool(key string, v bool) error {
	b := 0
	if v {
		b = 1
	}
	return d.set("dict set "+key, key, func(k *C.char) *C.sat_error { return C.sat_dict_set_bool(d.c, k, C.int(b)) })
}

func (d *Dict) SetString(key, v string) error {
	cv, free := cString(v)
	defer free()
	return d.set("dict set "+key, key, func(k *C.char) *C.sat_error { return C.sat_dict_set_string(d.c, k, cv) })
}

// SetDict stores a copy of sub under key.
func (d *Dict) SetDict(key string, sub *Dict) error {
	if sub == nil || sub.c == nil {
		return &Error{Op: "dict set " + key, Msg: "nil dict", Kind: KindValue}
	}
	return d.set("dict set "+key, key, func(k *C.char) *C.sat_error { return C.sat_dict_set_dict(d.c, k, sub.c) })
}

// Entry is one key of a dictionary and the kind of its value.
type Entry struct {
	Key  string
	Kind ValueKind
}

// Entries lists the keys in insertion order.
func (d *Dict) Entries() ([]Entry, error) {
	n := int64(C.sat_dict_size(d.c))
	out := make([]Entry, 0, n)
	for i := int64(0); i < n; i++ {
		var k *C.char
		var ty C.int
		if err := check("dict entry", C.sat_dict_entry(d.c, C.int64_t(i), &k, &ty)); err != nil {
			return nil, err
		}
		out = append(out, Entry{Key: C.GoString(k), Kind: ValueKind(ty)})
		C.free(unsafe.Pointer(k))
	}
	return out, nil
}

// Has reports whether key is present.
func (d *Dict) Has(key string) bool {
	es, err := d.Entries()
	if err != nil {
		return false
	}
	for _, e := range es {
		if e.Key == key {
			return true
		}
	}
	return false
}

// Tensor returns a new handle on the tensor under key (caller frees).
func (d *Dict) Tensor(key string) (*Tensor, error) {
	var out C.sat_tensor
	err := d.set("dict get", key, func(k *C.char) *C.sat_error { return C.sat_dict_get_tensor(d.c, k, &out) })
	if err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

func (d *Dict) Int(key string) (int64, error) {
	var v C.int64_t
	err := d.set("dict get", key, func(k *C.char) *C.sat_error { return C.sat_dict_get_int(d.c, k, &v) })
	return int64(v), err
}

// Float returns a number (ints are converted).
func (d *Dict) Float(key string) (float64, error) {
	var v C.double
	err := d.set("dict get", key, func(k *C.char) *C.sat_error { return C.sat_dict_get_double(d.c, k, &v) })
	return float64(v), err
}

func (d *Dict) Bool(key string) (bool, error) {
	var v C.int
	err := d.set("dict get", key, func(k *C.char) *C.sat_error { return C.sat_dict_get_bool(d.c, k, &v) })
	return v != 0, err
}

func (d *Dict) Str(key string) (string, error) {
	var v *C.char
	err := d.set("dict get", key, func(k *C.char) *C.sat_error { return C.sat_dict_get_string(d.c, k, &v) })
	if err != nil {
		return "", err
	}
	defer C.free(unsafe.Pointer(v))
	return C.GoString(v), nil
}

// Dict returns the nested dictionary under key (caller frees).
func (d *Dict) Dict(key string) (*Dict, error) {
	var v C.sat_dict
	err := d.set("dict get", key, func(k *C.char) *C.sat_error { return C.sat_dict_get_dict(d.c, k, &v) })
	if err != nil {
		return nil, err
	}
	return &Dict{c: v}, nil
}

// Save writes the dictionary to path in PyTorch's .pt (zip) format. It does
// not fsync or rename: callers wanting atomic files write a temporary path.
func (d *Dict) Save(path string) error {
	if d == nil || d.c == nil {
		return &Error{Op: "save", Msg: "nil dict", Kind: KindValue}
	}
	p, free := cString(path)
	defer free()
	return check("save "+path, C.sat_dict_save(d.c, p))
}

// LoadDict reads a .pt file holding a dictionary.
func LoadDict(path string) (*Dict, error) {
	p, free := cString(path)
	defer free()
	var d C.sat_dict
	if err := check("load "+path, C.sat_dict_load(p, &d)); err != nil {
		return nil, err
	}
	return &Dict{c: d}, nil
}

// String form for debugging.
func (e Entry) String() string { return fmt.Sprintf("%s(%d)", e.Key, e.Kind) }

// Serialized is a dictionary's .pt bytes held in native memory.
type Serialized struct {
	c    C.sat_bytes
	data []byte
}

// Serialize renders the dictionary as the bytes Save would write. The bytes
// do not reference any tensor, so they may be written to disk from another
// goroutine (Bytes and Free make no libtorch call) while training goes on.
func (d *Dict) Serialize() (*Serialized, error) {
	if d == nil || d.c == nil {
		return nil, &Error{Op: "serialize", Msg: "nil dict", Kind: KindValue}
	}
	var b C.sat_bytes
	var p *C.char
	var n C.int64_t
	if err := check("serialize", C.sat_dict_serialize(d.c, &b, &p, &n)); err != nil {
		return nil, err
	}
	s := &Serialized{c: b}
	if n > 0 {
		s.data = unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
	}
	return s, nil
}

// Bytes returns the serialized file content (valid until Free).
func (s *Serialized) Bytes() []byte { return s.data }

// Free releases the bytes.
func (s *Serialized) Free() {
	if s != nil && s.c != nil {
		C.sat_bytes_free(s.c)
		s.c, s.data = nil, nil
	}
}
