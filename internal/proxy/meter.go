package proxy

import (
	"github.com/authgate/authgate/internal/openai"
)

// A Meter learns the token usage of a stream of server-sent events as
// its events pass to the client (docs/http.md#token-metering), read by an
// openai.StreamReader: every event but a dropped one is forwarded whole
// as soon as its end arrives.
type Meter interface {
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

// startMeter meters x's stream with m.
func (x *exchange) startMeter(m Meter) {
	x.meter = m
	x.events.Reset(upstreamBody{x}, m.DropUsageChunk())
}

// endMeter reports the stream's usage to its Meter, once.
func (x *exchange) endMeter() {
	if x.meter == nil {
		return
	}
	x.meter.StreamEnded(x.events.Usage, x.events.HasUsage, x.events.Content)
	x.meter = nil
	x.events.Reset(nil, false)
}
