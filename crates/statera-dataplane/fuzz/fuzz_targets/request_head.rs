//! The HTTP proxy's request handling on raw bytes: heads parsed in place
//! (never taken whole from a prefix, never accepted with both
//! `Content-Length` and `Transfer-Encoding`), bodies delimited by their
//! framing, chunked bodies ending at the same byte whatever the read sizes.
//! Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = statera_dataplane::fuzzing::check_request_head(data);
});
