package ipc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	f, err := NewFrame(Text, 7).String("s1").String("lk.transcription").String("agent").
		Map(map[string]string{"b": "2", "a": "1"}).U8(1).Bytes([]byte("héllo")).Finish()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadFrame(bufio.NewReader(bytes.NewReader(f)))
	if err != nil || got.Type != Text || got.Session != 7 {
		t.Fatalf("got %+v %v", got, err)
	}
	c := NewCursor(got.Body)
	if c.String() != "s1" || c.String() != "lk.transcription" || c.String() != "agent" {
		t.Fatal("strings")
	}
	if n := c.U16(); n != 2 || c.String() != "a" || c.String() != "1" || c.String() != "b" || c.String() != "2" {
		t.Fatal("map not sorted")
	}
	if c.take(1)[0] != 1 || string(c.Rest()) != "héllo" || c.Err != nil {
		t.Fatal("rest")
	}
}

func TestOversizedLengthIsAnError(t *testing.T) {
	bad := []byte{0xff, 0xff, 0xff, 0x00, Opus, 0, 0, 0, 0}
	_, err := ReadFrame(bufio.NewReader(bytes.NewReader(bad)))
	if !errors.Is(err, ErrFrameSize) {
		t.Fatalf("want ErrFrameSize, got %v", err)
	}
}

// The four largest lengths once wrapped n+4 to 0..3, passed the bound and allocated ~4 GiB.
func TestLengthNearUint32MaxIsAnError(t *testing.T) {
	for _, n := range []uint32{0xfffffffc, 0xfffffffd, 0xfffffffe, 0xffffffff} {
		bad := binary.LittleEndian.AppendUint32(nil, n)
		bad = append(bad, Opus, 0, 0, 0, 0)
		_, err := ReadFrame(bufio.NewReader(bytes.NewReader(bad)))
		if !errors.Is(err, ErrFrameSize) {
			t.Fatalf("length %#x: want ErrFrameSize, got %v", n, err)
		}
	}
}

func TestLengthAtTheBounds(t *testing.T) {
	frame := func(n uint32) []byte {
		f := binary.LittleEndian.AppendUint32(nil, n)
		f = append(f, Opus, 0, 0, 0, 0)
		return append(f, make([]byte, int(n)-5)...)
	}
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(frame(MaxFrame - 4)))); err != nil {
		t.Fatalf("a frame of MaxFrame bytes: %v", err)
	}
	bad := binary.LittleEndian.AppendUint32(nil, MaxFrame-3)
	bad = append(bad, Opus, 0, 0, 0, 0)
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(bad))); !errors.Is(err, ErrFrameSize) {
		t.Fatalf("a frame of MaxFrame+1 bytes: want ErrFrameSize, got %v", err)
	}
}

func TestTruncatedFrameIsUnexpectedEOF(t *testing.T) {
	f, _ := NewFrame(Opus, 1).U32(5).U16(60).Bytes([]byte{1, 2, 3}).Finish()
	_, err := ReadFrame(bufio.NewReader(bytes.NewReader(f[:len(f)-1])))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v", err)
	}
}

func TestShortBodySetsErr(t *testing.T) {
	c := NewCursor([]byte{5, 0, 'a'})
	if c.String() != "" || c.Err == nil || c.U32() != 0 {
		t.Fatal("short string must fail")
	}
}
