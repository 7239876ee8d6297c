// Package metering counts the tokens upstreams report for each key_id and
// model (docs/http.md#token-metering): from the usage of a response held
// whole, and from the events of a stream as a proxy.Meter sees them pass.
// Model labels are bounded: the name the request named when the gateway
// routed it, else the response's if an upstream lists it (never a name
// read from an upstream alone), else empty.
package metering

import (
	"bytes"

	"github.com/authgate/authgate/internal/openai"
	"github.com/authgate/authgate/internal/proxy"
	"github.com/authgate/authgate/internal/stats"
)

// Counter counts tokens by key_id and model. Its methods are safe for
// concurrent use.
type Counter struct {
	tokens stats.Tokens
	listed func(model []byte) (string, bool)
	// Off turns metering off where no limit needs it
	// (TOKEN_METERING=false): Stream's meters read no events, and the
	// router does not call Response; set before use.
	Off bool
}

// New returns a Counter that names an unrouted response's model by
// listed: the route table's own name of a model an upstream lists.
func New(listed func(model []byte) (string, bool)) *Counter {
	return &Counter{listed: listed}
}

// Response meters a response body held whole of a request of keyID that
// named model ("" if the gateway did not look): it counts the body's
// usage and returns it, or reports false if the body has none.
func (c *Counter) Response(keyID, model string, body []byte) (openai.Usage, bool) {
	r := openai.ParseResponse(body)
	if !r.HasUsage {
		return openai.Usage{}, false
	}
	if model == "" && r.Model != nil {
		model, _ = c.listed(r.Model)
	}
	c.tokens.Add(keyID, model, int64(r.Usage.Prompt), int64(r.Usage.Completion))
	return r.Usage, true
}

// Stream returns the proxy.Meter of a stream answering a request of keyID
// that named model; injected reports that the gateway asked the upstream
// for the stream's usage, whose chunk the client then does not get.
func (c *Counter) Stream(keyID, model string, injected bool) proxy.Meter {
	return &streamMeter{c: c, keyID: keyID, model: model, drop: injected}
}

// Write appends authgate_tokens_total in the Prometheus text format.
func (c *Counter) Write(bb *bytes.Buffer) { c.tokens.Write(bb, "authgate_tokens_total") }

// streamMeter is Stream's Meter.
type streamMeter struct {
	c            *Counter
	keyID, model string
	drop         bool
}

func (m *streamMeter) DropUsageChunk() bool { return m.drop }

// Events reports whether the stream is read: unless metering is off.
func (m *streamMeter) Events() bool { return !m.c.Off }

// StreamEnded counts the last usage the stream reported: a running total
// with continuous usage, the final count otherwise, so that a stream cut
// short counts what was generated until then when the upstream reported
// it. A stream that reported none is not counted.
func (m *streamMeter) StreamEnded(u openai.Usage, hasUsage bool, _ int) {
	if hasUsage {
		m.c.tokens.Add(m.keyID, m.model, int64(u.Prompt), int64(u.Completion))
	}
}
