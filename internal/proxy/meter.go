package proxy

import (
	"github.com/authgate/authgate/internal/openai"
)

// A Meter is told when a response streamed to the client ends, and
// learns the token usage of a stream of server-sent events as its events
// pass (docs/http.md#token-metering), read by an openai.StreamReader (or
// by the relay's scanner): every event but a dropped one is forwarded
// whole as soon as its end arrives. Any other stream is passed on as it
// comes and reports no usage. A Meter of a stream the relay takes
// (Config.Relay) that has a method Detach() is told so before the
// request's RequestCtx is released, long before StreamEnded: it must keep
// what it needs of the ctx then.
type Meter interface {
	// Events reports whether the stream's events are to be read (a
	// stream of server-sent events only): false passes it on unread.
	Events() bool
	// DropUsageChunk reports whether the stream's usage-only chunk (the
	// one stream_options.include_usage adds) is to be kept from the
	// client: the gateway asked for it on the client's behalf.
	DropUsageChunk() bool
	// StreamEnded is called once, as the exchange ends, however it ends
	// (done, client gone, upstream failed or timed out): with the last
	// usage the events reported, if any, and the number of content events
	// that passed.
	StreamEnded(u openai.Usage, hasUsage bool, contentEvents int)
}

// upstreamBody is an exchange's upstream body, read with its deadline,
// under a StreamReader.
type upstreamBody struct{ x *exchange }

func (u upstreamBody) Read(b []byte) (int, error) { return u.x.readUpstream(b) }

// startMeter meters x's stream with m, reading its events if events.
func (x *exchange) startMeter(m Meter, events bool) {
	x.meter, x.meterEvents = m, events
	if events {
		x.events.Reset(upstreamBody{x}, m.DropUsageChunk())
	}
}

// endMeter reports the stream's usage to its Meter, once.
func (x *exchange) endMeter() {
	if x.meter == nil {
		return
	}
	if x.meterEvents {
		x.meter.StreamEnded(x.events.Usage, x.events.HasUsage, x.events.Content)
		x.events.Reset(nil, false)
	} else {
		x.meter.StreamEnded(openai.Usage{}, false, 0)
	}
	x.meter, x.meterEvents = nil, false
}
