package mockupstream

import (
	"bufio"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// streamKind selects the chunk shape of a streamed response.
type streamKind uint8

const (
	streamChat       streamKind = iota // chat.completion.chunk objects
	streamCompletion                   // text_completion objects
)

// eventDone is the last event of every stream.
const eventDone = "data: [DONE]\n\n"

// sseStream is one streamed response. It holds copies of everything it needs
// from the request, because its write method runs after the handler has
// returned, on a goroutine of its own, and must not touch the RequestCtx.
type sseStream struct {
	kind   streamKind
	head   []byte // `data: {"id":…,"object":…,"created":…,"model":…` shared by every chunk
	chunks int
	pad    int // Config.EventBytes
	delay  time.Duration
	done   <-chan struct{} // closed by Shutdown: skip the remaining pauses
	cut    bool            // max_tokens cut the chunks: finish_reason "length"
	usage  bool            // send a usage chunk before [DONE]
	every  bool            // and the usage so far in every chunk (continuous_usage_stats)
	prompt int             // prompt_tokens for the usage
	onEnd  func(events int, err error)
}

// stream answers ctx with a text/event-stream of kind chunks.
func (m *Mock) stream(ctx *fasthttp.RequestCtx, kind streamKind, idPrefix, model string, req *completionRequest, prompt int) {
	ctx.Response.Header.SetContentTypeBytes(strTextEventStream)
	ctx.Response.Header.SetBytesKV(strCacheControl, strNoCache)
	object := "chat.completion.chunk"
	if kind == streamCompletion {
		object = "text_completion"
	}
	head := make([]byte, 0, 128+len(model))
	head = append(head, `data: {"id":"`...)
	head = append(head, idPrefix...)
	head = strconv.AppendUint(head, ctx.ID(), 16)
	head = append(head, `","object":"`...)
	head = append(head, object...)
	head = append(head, `","created":`...)
	head = appendInt(head, time.Now().Unix())
	head = append(head, `,"model":`...)
	head = m.appendModel(head, model)
	chunks, cut := req.words(m.chunks)
	s := &sseStream{
		kind:   kind,
		head:   head,
		chunks: chunks,
		pad:    m.pad,
		cut:    cut,
		delay:  m.delay,
		done:   m.done,
		usage:  req.includeUsage,
		every:  req.includeUsage && req.continuousUsage, // as vLLM: both or neither
		prompt: prompt,
		onEnd:  m.onStreamEnd,
	}
	ctx.SetBodyStreamWriter(s.write)
}

// write is the fasthttp.StreamWriter of s. It sends every event, flushing
// each one, and stops at the first write error (the client has gone).
func (s *sseStream) write(w *bufio.Writer) {
	e := eventWriter{w: w, delay: s.delay, done: s.done}
	defer func() {
		if e.timer != nil {
			e.timer.Stop()
		}
		if s.onEnd != nil {
			s.onEnd(e.sent, e.err)
		}
	}()

	buf := make([]byte, 0, len(s.head)+160)
	if s.kind == streamChat {
		buf = append(append(buf[:0], s.head...),
			`,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]`...)
		buf = s.endEvent(buf, 0)
		if !e.send(buf) {
			return
		}
	}
	for i := range s.chunks {
		buf = append(buf[:0], s.head...)
		if s.kind == streamChat {
			buf = append(buf, `,"choices":[{"index":0,"delta":{"content":"`...)
		} else {
			buf = append(buf, `,"choices":[{"text":"`...)
		}
		if i >= len(replyWords) && i%len(replyWords) == 0 {
			buf = append(buf, ' ') // the word after a wrap-around needs its space
		}
		buf = append(buf, replyWords[i%len(replyWords)]...)
		tail := chatChunkTail
		if s.kind != streamChat {
			tail = textChunkTail
		}
		if n := s.pad - len(buf) - len(tail) - len("}\n\n"); n > 0 {
			buf = appendSpaces(buf, n)
		}
		buf = append(buf, tail...)
		buf = s.endEvent(buf, i+1)
		if !e.send(buf) {
			return
		}
	}
	buf = append(buf[:0], s.head...)
	if s.kind == streamChat {
		buf = append(buf, `,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":`...)
	} else {
		buf = append(buf, `,"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":`...)
	}
	buf = appendFinish(buf, s.cut)
	buf = append(buf, `}]`...)
	buf = s.endEvent(buf, s.chunks)
	if !e.send(buf) {
		return
	}
	if s.usage {
		buf = append(append(buf[:0], s.head...), `,"choices":[],"usage":`...)
		buf = appendUsage(buf, s.prompt, s.chunks)
		buf = append(buf, "}\n\n"...)
		if !e.send(buf) {
			return
		}
	}
	e.send(append(buf[:0], eventDone...))
}

// The ends of a content chunk's choices, after its text.
const (
	chatChunkTail = `"},"logprobs":null,"finish_reason":null}]`
	textChunkTail = `","index":0,"logprobs":null,"finish_reason":null}]`
)

// appendSpaces appends n spaces to dst.
func appendSpaces(dst []byte, n int) []byte {
	for range n {
		dst = append(dst, ' ')
	}
	return dst
}

// endEvent ends a chunk event: with the usage of the completion tokens
// sent so far when the stream carries it in every chunk.
func (s *sseStream) endEvent(buf []byte, completion int) []byte {
	if s.every {
		buf = append(buf, `,"usage":`...)
		buf = appendUsage(buf, s.prompt, completion)
	}
	return append(buf, "}\n\n"...)
}

// eventWriter sends the events of one stream, pausing between them.
type eventWriter struct {
	w     *bufio.Writer
	delay time.Duration
	done  <-chan struct{}
	timer *time.Timer // created at the first pause
	sent  int         // events sent so far
	err   error       // the write error that stopped the stream
}

// send waits for the pause due before event, writes and flushes it, and
// reports whether that succeeded.
func (e *eventWriter) send(event []byte) bool {
	if e.sent > 0 && e.delay > 0 {
		e.pause()
	}
	if _, e.err = e.w.Write(event); e.err == nil {
		e.err = e.w.Flush()
	}
	if e.err != nil {
		return false
	}
	e.sent++
	return true
}

// pause waits for e.delay, or until done is closed.
func (e *eventWriter) pause() {
	select {
	case <-e.done:
		return
	default:
	}
	if e.timer == nil {
		e.timer = time.NewTimer(e.delay)
	} else {
		e.timer.Reset(e.delay)
	}
	select {
	case <-e.timer.C:
	case <-e.done:
	}
}
