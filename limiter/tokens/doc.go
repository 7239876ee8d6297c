// Package tokens is authgate's token limiter for an LLM gateway: per
// key_id, exact limits on tokens per minute (TPM), tokens per UTC day (TPD)
// and requests in flight, kept in this process. It is the token
// counterpart of package limiter's request Window, with the same
// conventions: time is a parameter (Reserve(now, n)), decisions are exact,
// and a Result carries what the 429 body and the Retry-After and
// x-ratelimit-* headers need.
//
// # Tokens per minute: reserve at admission, reconcile at the end
//
// A request's token count is known only when it ends, so a Window reserves
// at admission and reconciles at the end. Window.Reserve(now, n) is given
// the most the request may consume, n (its prompt estimate plus its maximum
// output, computed by the caller). It admits the request iff
//
//	used + reserved + n <= limit
//
// where used is the tokens committed by requests admitted in the window
// (now-period, now] and reserved the reservations of requests admitted in
// that window and still in flight. The request's n is placed at its
// admission time. When the request ends, its Reservation is committed with
// the tokens it actually consumed (Reservation.Commit), which replace the
// reservation at the same admission time: less frees tokens at once, more
// is counted in full. The excess of a commit over its reservation is the
// estimation error; it is the only way the tokens of the requests admitted
// in one window can exceed the limit, and each Window counts it
// (Window.EstimationError) for a metric. A request with n over the limit
// never fits: it is refused as TooLarge, with no retry time. A refusal
// because the window is full (Limited) carries RetryAfter, the time until
// enough tokens leave the window for n to fit, assuming the reservations in
// flight stay as they are (a commit below its reservation may free tokens
// sooner). Reset is the time until the rate limit is back to its initial
// state, as OpenAI defines x-ratelimit-reset-tokens: until every token now
// in the window (committed or reserved) has left it; 0 for an empty window.
//
// Memory is bounded per key_id whatever the traffic: a Window keeps its
// tokens in a ring of 600 time buckets (100 ms each for a 60 s period),
// about 10 KB, allocated by its first Reserve. A bucket's tokens leave the
// window when the bucket's last instant does, so tokens never leave early
// and the limit is never exceeded (but for the estimation error); they may
// leave up to one bucket width late, so a RetryAfter or Reset may be up to
// one bucket (period/600) longer than the exact value, never shorter. A
// reservation remembers its bucket: a commit adjusts that bucket if it is
// still in the window, and otherwise changes nothing in the window (its
// tokens have left it) but still ends the reservation.
//
// # Tokens per day
//
// Daily limits tokens per UTC calendar day with the same reserve and
// reconcile rule: a request is admitted iff the day's committed and
// reserved tokens plus n are at most the limit. Reset, and a Limited
// request's RetryAfter, are the time to the next UTC midnight, when the
// count starts again from zero. A request that spans midnight counts on the
// day it was admitted: its commit after midnight changes nothing.
//
// The day's counts survive a restart through a State: each key_id's date
// and total (committed plus reserved) written to a file in a directory
// (State.WriteFile: a temporary file, fsync, rename, fsync of the
// directory, so the file is always whole), and read back by LoadState,
// which keeps only today's entries. A Saver writes the registry's State
// every second (or its interval) and on Close, so a crash loses at most
// the tokens admitted or committed in the last interval; requests in
// flight at the last save count with their reservation.
//
// # Requests in flight
//
// Concurrency limits the requests of a key_id in flight: Acquire admits
// iff fewer than the limit hold a Slot, and Slot.Release frees it. A
// refusal is ConcurrencyExceeded, with no retry time: a slot frees when a
// request ends, which no clock predicts.
//
// # One key_id: Limiter and Registry
//
// A Limiter combines the three for one key_id, each off when its limit is
// 0. Limiter.Admit takes a slot, a TPM reservation and a TPD reservation
// all at once or none of them, under the Limiter's one lock, and
// Admission.Finish(actual) commits and releases them all. A Registry holds
// one Limiter per key_id, created on the key_id's first request; a reload
// changes limits in place (Registry.Sync, Limiter.SetLimits), keeping the
// tokens counted. After a key_id's first request, Admit and Finish do not
// allocate.
//
// # Ending every request exactly once
//
// Reservation, Slot and Admission are small values: the caller keeps the
// one it got in a variable and must end it exactly once, by Commit or
// Cancel (Reservation), Release (Slot) or Finish (Admission), typically in
// a defer: a reservation never ended counts against the limit until its
// bucket (or day) has passed, and a slot never released is held for good.
// Ending methods are idempotent on that variable (a second call is a
// no-op), so an explicit Finish(actual) and a deferred Finish on an error
// path may both run. A copy ended as well would end the request twice: do
// not copy one after using it.
//
// # Messages
//
// Message and AppendMessage write the text of a 429 body in OpenAI's
// words, for example "Rate limit reached for KEY_ID on tokens per min
// (TPM): Limit 1000, Used 900, Requested 200. Please try again in 1.2s.",
// and return its code.
package tokens
