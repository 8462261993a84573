//! `eddy-c-bindgen WIT_DIR WORLD OUT_DIR`: the C bindings of a world, as
//! `wit-bindgen c WIT_DIR --world WORLD --out-dir OUT_DIR` writes them
//! (`<world>.h`, `<world>.c` and `<world>_component_type.o`), with the
//! generator's default options.

use std::path::PathBuf;

use anyhow::Context as _;
use wit_bindgen_core::wit_parser::Resolve;
use wit_bindgen_core::{Files, WorldGenerator as _};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wit, world, out] = args.as_slice() else {
        anyhow::bail!("usage: eddy-c-bindgen WIT_DIR WORLD OUT_DIR");
    };
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_path(wit).with_context(|| format!("cannot read the WIT package {wit}"))?;
    let world = resolve.select_world(&[package], Some(world))?;
    let mut files = Files::default();
    wit_bindgen_c::Opts::default().build().generate(&mut resolve, world, &mut files)?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
