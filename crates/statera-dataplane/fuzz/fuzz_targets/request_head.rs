//! The client-side request head handling: the raw head tracker that catches
//! `Content-Length` + `Transfer-Encoding` (at several read boundaries), then
//! a whole connection of these bytes through the proxy's transport and
//! hyper's HTTP/1 server. Must never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = statera_dataplane::fuzzing::check_request_head(data);
});
