// Package auth reads authgate's keys file into an immutable key set and
// parses the Authorization header of a request.
//
// A keys file (see [Parse]) maps API keys to key_ids. [Load] or [Parse] turn
// it into a [KeySet], which the request path queries with [KeySet.Lookup]
// after [ParseAuthorization] has extracted the presented key. Keys are held
// only as SHA-256 digests: a KeySet never stores, compares or prints a plain
// key, and no error of this package contains any part of one.
package auth
