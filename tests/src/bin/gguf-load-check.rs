//! Runs the CPU load path (parse, config, tensor table, tokenizer, chat template) on each
//! file named on the command line, one result line per file, then the process's peak
//! virtual size: the child process of the hostile-GGUF tests (tests/hostile_gguf.rs),
//! which runs it under an address-space limit.

fn main() {
    for path in std::env::args().skip(1) {
        match wisp_e2e::hostile::load_check(std::path::Path::new(&path)) {
            Ok(()) => println!("ok\t{path}"),
            Err((kind, msg)) => println!("err\t{path}\t{kind}\t{}", msg.replace('\n', " ")),
        }
    }
    println!("vm_peak\t{}", wisp_e2e::hostile::vm_peak().unwrap_or(0));
}
