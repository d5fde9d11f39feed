//! A floor for the Envoy benchmark (`scripts/bench.sh`, variant "empty Wasm filter"):
//! a proxy-wasm HTTP filter, built like persona-edge's (same SDK, same profile, same
//! place in envoy/envoy.yaml, before the buffer filter), that does the least on the
//! same paths, and no policy:
//!
//! - a request without a body is refused at the headers with a small 403, as
//!   persona-edge refuses an unknown source (without reading the headers, the
//!   source address, logging or counting);
//! - a request with a body is held until the body is complete, which is read out of
//!   Envoy and written back unchanged, as persona-edge does with a rewritten body
//!   (without parsing, verifying or rewriting it).
//!
//! What persona-edge costs beyond this floor is its own work; what the floor costs
//! beyond Envoy without a filter is what any Wasm filter costs there.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor;

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            self.send_http_response(
                403,
                vec![("content-type", "application/vnd.api+json")],
                Some(br#"{"errors":[{"status":"403"}]}"#),
            );
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            // Buffer until the whole body is there.
            return Action::Pause;
        }
        if let Some(body) = self.get_http_request_body(0, body_size) {
            self.set_http_request_body(0, body_size, &body);
        }
        Action::Continue
    }
}
