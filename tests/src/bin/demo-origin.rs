//! A demo origin for the run commands: answers 200 to everything and prints each
//! request it receives, so you can see what persona-edge let through.

use std::sync::Arc;

use persona_edge_tests::{Answer, Origin, Recorded};

fn main() {
    let mut port = 8081u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| fail("--port needs a number"));
            }
            "-h" | "--help" => {
                println!("usage: demo-origin [--port PORT]   (default 8081)");
                return;
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    let print = Arc::new(|r: &Recorded| {
        let mut out = format!("\n--- origin received {} {}\n", r.method, r.path);
        for (n, v) in &r.headers {
            out.push_str(&format!("{n}: {v}\n"));
        }
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&r.body));
        println!("{out}");
    });
    let origin = Origin::start_on(port, Answer::default(), Some(print));
    println!("demo origin listening on {}", origin.url());
    loop {
        std::thread::park();
    }
}

fn fail(message: &str) -> ! {
    eprintln!("demo-origin: {message}");
    std::process::exit(2)
}
