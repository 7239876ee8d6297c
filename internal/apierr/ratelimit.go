package apierr

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

var (
	strRetryAfter         = []byte("Retry-After")
	strRetryAfterMs       = []byte("Retry-After-Ms")
	strRateLimitLimit     = []byte("X-Ratelimit-Limit-Requests")
	strRateLimitRemaining = []byte("X-Ratelimit-Remaining-Requests")
	strRateLimitReset     = []byte("X-Ratelimit-Reset-Requests")
)

// LimiterUnavailable answers when a shared limiter (Redis) cannot decide
// and REDIS_FAILURE_MODE is closed.
var LimiterUnavailable = Body("The rate limiter is unavailable", "api_error", "rate_limiter_unavailable")

// WriteRateLimited answers 429 with body and the retry headers of a wait
// of d (docs/http.md#rate-limit).
func WriteRateLimited(ctx *fasthttp.RequestCtx, body []byte, d time.Duration) {
	Write(ctx, fasthttp.StatusTooManyRequests, body)
	SetRetry(ctx, d)
}

// SetRetry sets Retry-After-Ms (d rounded up to the millisecond) and
// Retry-After (whole seconds, rounded up) on ctx's response.
func SetRetry(ctx *fasthttp.RequestCtx, d time.Duration) {
	var buf [24]byte
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	ctx.Response.Header.SetCanonical(strRetryAfterMs, strconv.AppendInt(buf[:0], ms, 10))
	ctx.Response.Header.SetCanonical(strRetryAfter, strconv.AppendInt(buf[:0], RetryAfterSeconds(d), 10))
}

// SetRateHeaders sets OpenAI's x-ratelimit-*-requests headers: the
// limit, the requests remaining and the time until the window is empty.
func SetRateHeaders(ctx *fasthttp.RequestCtx, limit, remaining int, reset time.Duration) {
	var buf [24]byte
	h := &ctx.Response.Header
	h.SetCanonical(strRateLimitLimit, strconv.AppendInt(buf[:0], int64(limit), 10))
	h.SetCanonical(strRateLimitRemaining, strconv.AppendInt(buf[:0], int64(remaining), 10))
	h.SetCanonical(strRateLimitReset, AppendDuration(buf[:0], reset))
}
