package listen

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestLogServeError: the errors fasthttp's worker pool keeps quiet are
// kept quiet for woken parked connections too; the others are logged.
func TestLogServeError(t *testing.T) {
	for _, c := range []struct {
		err error
		log bool
	}{
		{nil, false},
		{fmt.Errorf("write: %w", syscall.EPIPE), false},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), false},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), false},
		{fmt.Errorf("read tcp: %w", os.ErrDeadlineExceeded), false},
		{fmt.Errorf("error when reading request headers: %w", fasthttp.ErrSmallReadBuffer), false},
		{fmt.Errorf("trailer: %w", fasthttp.ErrBadTrailer), false},
		{errors.New("error when reading request headers: cannot find http request method"), true},
		{fasthttp.ErrConcurrencyLimit, true},
	} {
		if got := LogServeError(c.err); got != c.log {
			t.Errorf("LogServeError(%v) = %v, want %v", c.err, got, c.log)
		}
	}
}
