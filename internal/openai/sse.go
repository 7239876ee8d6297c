package openai

import "bytes"

// DefaultMaxEvent is SSEScanner's MaxEvent when that is zero: 1 MiB, room
// for a Responses API response.completed event, which repeats the whole
// output, of some 200,000 tokens.
const DefaultMaxEvent = 1 << 20

// SSEEvent is what SSEScanner.Next returns: the bytes of one whole event
// and what was read from it, or a piece of an event longer than MaxEvent.
type SSEEvent struct {
	// Bytes are the bytes to forward: a whole event with the blank line
	// that ends it, or a piece of a long event. They alias the chunk given
	// to Feed or the scanner's own buffer: valid until the next call of
	// Feed, Next, Flush or Reset.
	Bytes []byte

	// Long reports that Bytes is a piece of an event longer than
	// MaxEvent, passed through unread. Its first piece has Content set, so
	// that a long event counts as one content event.
	Long bool

	// Done reports the event "data: [DONE]", the end of a chat completions
	// or completions stream.
	Done bool

	// Content reports a content delta: a choice with a non-empty "text",
	// or a "delta" with a non-empty "content", "reasoning_content" or
	// "reasoning", or non-empty "tool_calls"; or a Responses API event
	// with a non-empty string "delta". Their count stands in for the
	// completion tokens of a stream that reports no usage.
	Content bool

	// HasUsage reports a "usage" object, read into Usage: at the top level
	// (OpenAI's last chunk with include_usage; vLLM's and SGLang's every
	// chunk with continuous_usage_stats, each a running total) or in
	// "response" (the Responses API's response.completed).
	HasUsage bool
	Usage    Usage

	// UsageOnly reports a chunk with usage and empty "choices": the chunk
	// include_usage adds at the end of a stream, which a gateway that asked
	// for it on the client's behalf (Edit.IncludeUsage) drops.
	UsageOnly bool
}

// SSEScanner splits a text/event-stream body, fed in chunks as they arrive
// from the upstream, into events, and reads from each what metering needs.
// An event is a run of lines ended by a blank line; lines end with "\n" or
// "\r\n" (a lone "\r", which the SSE specification also allows, is not
// recognised: no upstream sends it). The scanner holds back the bytes of
// an event until its blank line arrives, and then returns them whole, so
// that the caller can forward every event but the one it drops, each as
// soon as it is complete, never delaying one event for another. It holds
// at most MaxEvent bytes: an event longer than that is passed through in
// pieces as its bytes arrive, and nothing is read from it. The scanner
// allocates nothing once its buffers have grown to the largest event.
//
// A proxy uses it so:
//
//	for {
//		n, err := upstream.Read(buf)
//		s.Feed(buf[:n])
//		for ev, ok := s.Next(); ok; ev, ok = s.Next() {
//			meter(ev)
//			if !(injected && ev.UsageOnly) {
//				client.Write(ev.Bytes)
//			}
//		}
//		// flush the client
//		if err != nil {
//			break
//		}
//	}
//	if ev, ok := s.Flush(); ok {
//		client.Write(ev.Bytes)
//	}
//
// The zero value is ready to use. An SSEScanner is not safe for concurrent
// use.
type SSEScanner struct {
	// MaxEvent is the length in bytes, blank line included, of the longest
	// event the scanner holds back to read; 0 means DefaultMaxEvent.
	MaxEvent int

	chunk   []byte    // the chunk given to Feed
	pos     int       // chunk[:pos] has been returned or held
	held    []byte    // the start of the current event, from earlier chunks
	heldOut bool      // held was returned: empty it on the next call
	line    lineState // the current line, as far as it has been read
	long    bool      // inside an event longer than MaxEvent
	first   bool      // the next piece of the long event is its first
	scanned int       // chunk[pos:pos+scanned] is in the long event, without its end
	data    []byte    // the data of an event with several data lines
}

// lineState is what is known of the current line of the stream.
type lineState uint8

const (
	lineStart lineState = iota // at the start of a line
	lineCR                     // the line so far is "\r"
	lineText                   // the line so far has other bytes
)

// Feed gives s the next chunk of the stream. The chunk must not be
// modified until Next reports false; Next must have reported false for the
// previous chunk.
func (s *SSEScanner) Feed(chunk []byte) {
	s.chunk, s.pos = chunk, 0
}

// Next returns the next event of the chunks fed so far, or the next piece
// of a long event, and reports whether there is one. It reports false
// when the rest of the chunk is the start of an event, which it holds
// until the next Feed.
func (s *SSEScanner) Next() (SSEEvent, bool) {
	if s.heldOut {
		s.held, s.heldOut = s.held[:0], false
	}
	rest := s.chunk[s.pos:]
	if len(rest) == 0 {
		return SSEEvent{}, false
	}
	if s.long {
		ev := SSEEvent{Long: true, Content: s.first}
		s.first = false
		end, st := eventEnd(rest[s.scanned:], s.line)
		if end < 0 {
			ev.Bytes, s.line = rest, st
			s.pos, s.scanned = len(s.chunk), 0
			return ev, true
		}
		end += s.scanned
		ev.Bytes = rest[:end]
		s.pos, s.scanned, s.line, s.long = s.pos+end, 0, lineStart, false
		return ev, true
	}

	window := rest // the bytes the event may still take
	if room := s.maxEvent() - len(s.held); len(window) > room {
		window = window[:room]
	}
	end, st := eventEnd(window, s.line)
	switch {
	case end >= 0:
		s.pos += end
		s.line = lineStart
		ev := rest[:end]
		if len(s.held) > 0 {
			s.held = append(s.held, ev...)
			s.heldOut = true
			ev = s.held
		}
		return s.read(ev), true
	case len(window) == len(rest):
		// The chunk ends inside the event: hold it until the end comes.
		s.held = append(s.held, rest...)
		s.pos, s.line = len(s.chunk), st
		return SSEEvent{}, false
	}
	// More than MaxEvent bytes and no end yet: pass the event through.
	s.long, s.first, s.line, s.scanned = true, true, st, len(window)
	if len(s.held) > 0 {
		s.first, s.heldOut = false, true
		return SSEEvent{Bytes: s.held, Long: true, Content: true}, true
	}
	return s.Next()
}

// Flush returns the bytes held of an event the stream ended inside of,
// before its blank line, and reports whether there are any; nothing is
// read from them (a client discards such an event). It then resets s for
// another stream. Call it when the stream has ended and Next has reported
// false.
func (s *SSEScanner) Flush() (SSEEvent, bool) {
	if s.heldOut {
		s.held, s.heldOut = s.held[:0], false
	}
	// Next should have reported false; if it has not, the rest of the chunk
	// is returned all the same.
	rest := s.chunk[s.pos:]
	ev := SSEEvent{Bytes: rest, Long: true, Content: s.first}
	if !s.long {
		ev = SSEEvent{Bytes: append(s.held, rest...)}
	}
	s.Reset()
	return ev, len(ev.Bytes) > 0
}

// Reset makes s ready for another stream, keeping its buffers.
func (s *SSEScanner) Reset() {
	*s = SSEScanner{MaxEvent: s.MaxEvent, held: s.held[:0], data: s.data[:0]}
}

func (s *SSEScanner) maxEvent() int {
	if s.MaxEvent > 0 {
		return s.MaxEvent
	}
	return DefaultMaxEvent
}

// eventEnd returns the offset in p just past the blank line that ends the
// event, given the state of the line p continues, or -1 and the state of
// the line p ends inside of.
func eventEnd(p []byte, st lineState) (int, lineState) {
	for i := 0; ; {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			switch tail := p[i:]; {
			case len(tail) == 0:
			case st == lineStart && len(tail) == 1 && tail[0] == '\r':
				st = lineCR
			default:
				st = lineText
			}
			return -1, st
		}
		line := p[i : i+j]
		if st == lineStart && (len(line) == 0 || len(line) == 1 && line[0] == '\r') || st == lineCR && len(line) == 0 {
			return i + j + 1, lineStart
		}
		st = lineStart
		i += j + 1
	}
}

// read reads the whole event ev: its "data" lines, joined by "\n" as the
// SSE specification joins them, as "[DONE]" or a JSON object.
func (s *SSEScanner) read(ev []byte) SSEEvent {
	e := SSEEvent{Bytes: ev}
	var data []byte
	lines := 0
	for i := 0; i < len(ev); {
		j := bytes.IndexByte(ev[i:], '\n') // found: ev ends with "\n"
		line := bytes.TrimSuffix(ev[i:i+j], []byte("\r"))
		i += j + 1
		if len(line) == 0 {
			break
		}
		field, value := line, []byte(nil)
		if k := bytes.IndexByte(line, ':'); k >= 0 {
			field, value = line[:k], line[k+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if string(field) != "data" {
			continue // event:, id:, retry:, a ": comment"
		}
		switch lines {
		case 0:
			data = value
		case 1:
			s.data = append(append(append(s.data[:0], data...), '\n'), value...)
			data = s.data
		default:
			s.data = append(append(s.data, '\n'), value...)
			data = s.data
		}
		lines++
	}
	switch {
	case lines == 0:
	case string(data) == "[DONE]":
		e.Done = true
	default:
		readChunk(data, &e)
	}
	return e
}

// readChunk reads the data of an event, a chat completions, completions
// or Responses API JSON object, into e; nothing if it is not one.
func readChunk(b []byte, e *SSEEvent) {
	o, err := openDocument(b)
	if err != nil {
		return
	}
	var (
		u       Usage
		hasU    bool
		content bool
		choices = -1
	)
	for o.next() {
		v := b[o.val.start:o.val.end]
		switch {
		case o.keyIs("usage"):
			u, hasU = readUsage(b, o.val, o.depth)
		case o.keyIs("choices"):
			choices, content = readChoices(b, o.val, o.depth)
		case o.keyIs("response"):
			if v[0] != '{' {
				break
			}
			r, _ := openObject(b, o.val.start, o.depth)
			for r.next() {
				if r.keyIs("usage") {
					u, hasU = readUsage(b, r.val, r.depth)
				}
			}
		case o.keyIs("delta"):
			if len(v) > 2 && v[0] == '"' {
				content = true
			}
		}
	}
	if o.close() != nil {
		return
	}
	e.Usage, e.HasUsage = u, hasU
	e.Content = content
	e.UsageOnly = hasU && choices == 0
}

// readChoices reads the checked value v of "choices": how many there are
// (-1 if it is not an array) and whether one has content.
func readChoices(b []byte, v span, depth int) (n int, content bool) {
	if b[v.start] != '[' {
		return -1, false
	}
	a, _ := openArray(b, v.start, depth)
	for a.next() {
		n++
		if content || b[a.val.start] != '{' {
			continue
		}
		c, _ := openObject(b, a.val.start, a.depth)
		for c.next() {
			switch {
			case c.keyIs("text"):
				content = content || nonEmptyString(b[c.val.start:c.val.end])
			case c.keyIs("delta") && b[c.val.start] == '{':
				d, _ := openObject(b, c.val.start, c.depth)
				for d.next() {
					dv := b[d.val.start:d.val.end]
					switch {
					case d.keyIs("content"), d.keyIs("reasoning_content"), d.keyIs("reasoning"):
						content = content || nonEmptyString(dv)
					case d.keyIs("tool_calls"):
						content = content || dv[0] == '[' && len(bytes.TrimSpace(dv[1:len(dv)-1])) > 0
					}
				}
			}
		}
	}
	return n, content
}

// nonEmptyString reports whether the checked value v is a string other
// than "".
func nonEmptyString(v []byte) bool { return len(v) > 2 && v[0] == '"' }
