package logsink_test

import (
	"fmt"
	"time"

	"github.com/authgate/authgate/logsink"
)

func ExampleSink() {
	// "-" is standard output; a real gateway passes ACCESS_LOG's path.
	sink, err := logsink.New(logsink.Config{Path: "-"})
	if err != nil {
		fmt.Println(err)
		return
	}
	// In a handler: the slices may be fasthttp request memory; Write
	// copies them.
	sink.Write(&logsink.Entry{
		Time:   time.Date(2026, 11, 27, 6, 30, 22, 123456789, time.UTC),
		KeyID:  "alice",
		Method: []byte("POST"),
		Path:   []byte("/v1/chat/completions?stream=true"),
		Status: 200,
	})
	sink.Write(&logsink.Entry{
		Time:   time.Date(2026, 11, 27, 7, 30, 22, 0, time.FixedZone("CET", 3600)),
		Method: []byte("GET"),
		Path:   []byte("/v1/models"),
		Status: 401,
	})
	// At shutdown: every queued line is written before Close returns.
	if err := sink.Close(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// 2026-11-27T06:30:22.123456Z | alice | POST /v1/chat/completions | 200
	// 2026-11-27T06:30:22.000000Z | - | GET /v1/models | 401
}

func ExampleParseFormat() {
	f, err := logsink.ParseFormat("json")
	fmt.Println(f, err)
	_, err = logsink.ParseFormat("xml")
	fmt.Println(err)
	// Output:
	// json <nil>
	// logsink: unknown access log format "xml" (want "text" or "json")
}
