package openai

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// chunked is a reader that returns src in pieces of n bytes, then err.
type chunked struct {
	src string
	n   int
	err error
}

func (c *chunked) Read(b []byte) (int, error) {
	if c.src == "" {
		return 0, c.err
	}
	k := min(c.n, len(c.src), len(b))
	copy(b, c.src[:k])
	c.src = c.src[k:]
	return k, nil
}

// TestStreamReader: whatever the cuts of the upstream's reads and the
// size of the reader's buffer, the client gets the stream byte for byte
// but for the dropped usage-only chunk; the last usage and the content
// events are counted; an unfinished last event passes as it came at a
// clean end and is lost after a failure.
func TestStreamReader(t *testing.T) {
	const (
		role    = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
		content = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1}}\n\n"
		stop    = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n"
		usage   = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n"
		done    = "data: [DONE]\n\n"
	)
	stream := role + content + content + stop + usage + done
	for _, drop := range []bool{false, true} {
		want := stream
		if drop {
			want = strings.Replace(stream, usage, "", 1)
		}
		for n := 1; n <= len(stream); n += 7 {
			for _, out := range []int{1, 5, streamBufferSize, 2 * streamBufferSize} {
				var r StreamReader
				r.Reset(&chunked{src: stream, n: n, err: io.EOF}, drop)
				got, err := readScribbling(&r, out)
				if err != nil || string(got) != want {
					t.Fatalf("drop %v, reads of %d, buffer %d: %q, %v; want %q", drop, n, out, got, err, want)
				}
				if !r.HasUsage || r.Usage != (Usage{7, 2, 9}) || r.Content != 2 {
					t.Fatalf("drop %v, reads of %d: usage %+v %v, %d content events", drop, n, r.Usage, r.HasUsage, r.Content)
				}
			}
		}
	}
	// Cut in its last event: at a clean end the rest passes as it came;
	// after a failure it does not, and the failure is returned.
	var r StreamReader
	r.Reset(&chunked{src: role + "data: {\"cho", n: 9, err: io.EOF}, true)
	if got, err := io.ReadAll(&r); err != nil || string(got) != role+"data: {\"cho" {
		t.Fatalf("clean end inside an event: %q, %v", got, err)
	}
	broken := errors.New("upstream reset")
	r.Reset(&chunked{src: role + content + "data: {\"cho", n: 9, err: broken}, true)
	got, err := io.ReadAll(&r)
	if !errors.Is(err, broken) || string(got) != role+content {
		t.Fatalf("failure inside an event: %q, %v", got, err)
	}
	if !r.HasUsage || r.Usage.Completion != 1 {
		t.Fatalf("the running usage before the failure: %+v, %v", r.Usage, r.HasUsage)
	}
}

// readScribbling reads r to its end with one buffer of size bytes, as
// fasthttp's body copy does, and overwrites the buffer after each read,
// as fasthttp does when it reads the next piece into it: a reader that
// kept a reference into the buffer would lose what it kept.
func readScribbling(r io.Reader, size int) ([]byte, error) {
	buf := make([]byte, size)
	var got []byte
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		for i := range buf {
			buf[i] = 0xff
		}
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
}

// TestStreamReaderUsesCallersBuffer: read with a buffer of
// streamBufferSize or more, a StreamReader makes no buffer of its own.
func TestStreamReaderUsesCallersBuffer(t *testing.T) {
	const ev = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
	for _, size := range []int{streamBufferSize - 1, streamBufferSize} {
		var r StreamReader
		r.Reset(&chunked{src: ev + ev + "data: [DONE]\n\n", n: 30, err: io.EOF}, true)
		if got, err := readScribbling(&r, size); err != nil || string(got) != ev+ev+"data: [DONE]\n\n" {
			t.Fatalf("buffer %d: %q, %v", size, got, err)
		}
		if own := r.buf != nil; own != (size < streamBufferSize) {
			t.Fatalf("buffer %d: a read buffer of its own: %v", size, own)
		}
	}
}

// TestStreamReaderResetDropsLargeBuffers: after a stream with a large
// event, Reset keeps no buffer over maxKeptOut, so a pooled reader holds
// little between streams.
func TestStreamReaderResetDropsLargeBuffers(t *testing.T) {
	big := "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", 200<<10) + "\"}}]}\n\n"
	var r StreamReader
	r.Reset(&chunked{src: big + "data: [DONE]\n\n", n: 4096, err: io.EOF}, false)
	if got, err := io.ReadAll(&r); err != nil || len(got) != len(big)+len("data: [DONE]\n\n") {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if r.Content != 1 {
		t.Fatalf("%d content events, want 1", r.Content)
	}
	r.Reset(nil, false)
	if c := max(cap(r.out), cap(r.scan.held), cap(r.scan.data)); c > maxKeptOut {
		t.Fatalf("a buffer of %d bytes kept after Reset", c)
	}
}
