package wrk

import "testing"

func TestParse(t *testing.T) {
	out := []byte("Running 2s test @ http://127.0.0.1:1/v1/chat/completions\n  1 threads and 64 connections\n" +
		`{"requests":1000,"duration_us":2000000,"bytes":5,"connect_errors":0,"read_errors":1,"write_errors":0,"status_errors":1000,"timeouts":0,"p50_us":500,"p90_us":700,"p99_us":900,"max_us":1500}` + "\n")
	r, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 1000 || r.DurationUS != 2e6 || r.StatusErrors != 1000 || r.ReadErrors != 1 || r.P99 != 900 || r.Max != 1500 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := Parse([]byte("unable to connect\n")); err == nil {
		t.Error("no result line: no error")
	}
}
