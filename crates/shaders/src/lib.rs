//! WGSL kernels of the Wisp engine, one file per kernel family, and the functions that
//! specialise them (quant type, f16 or f32, workgroup size) into complete shaders.
//!
//! Specialisation is textual: a tiny preprocessor keeps `#if NAME` / `#else` / `#endif`
//! blocks whose NAME is defined, so one source serves every variant. (naga does not yet
//! accept every `enable` directive browsers require, another reason to keep this step.)

pub mod bench;
pub mod ops;
pub mod quant;

/// Keep the lines of `#if NAME … #else … #endif` blocks that `defines` selects
/// (`#if !NAME` negates); blocks nest.
pub fn preprocess(source: &str, defines: &[&str]) -> String {
    let mut out = String::with_capacity(source.len());
    // Each entry: (this block is active, some branch of it was taken).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let active = |stack: &[(bool, bool)]| stack.iter().all(|s| s.0);
    for line in source.lines() {
        let t = line.trim_start();
        if let Some(cond) = t.strip_prefix("#if ") {
            let cond = cond.trim();
            let on = match cond.strip_prefix('!') {
                Some(name) => !defines.contains(&name.trim()),
                None => defines.contains(&cond),
            };
            stack.push((on, on));
        } else if t.starts_with("#else") {
            if let Some(top) = stack.last_mut() {
                top.0 = !top.1;
                top.1 = true;
            }
        } else if t.starts_with("#endif") {
            stack.pop();
        } else if active(&stack) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::preprocess;

    #[test]
    fn selects_branches() {
        let src =
            "a\n#if F16\nb\n#if X\nc\n#else\nd\n#endif\n#else\ne\n#endif\n#if !F16\nf\n#endif\ng\n";
        assert_eq!(preprocess(src, &["F16"]), "a\nb\nd\ng\n");
        assert_eq!(preprocess(src, &["F16", "X"]), "a\nb\nc\ng\n");
        assert_eq!(preprocess(src, &[]), "a\ne\nf\ng\n");
    }
}
