//! `--against OBJ.kapi`: checking and building plans against an objective
//! image.
//!
//! Input: a plan file and an objective image. Output: a checked and proved
//! [`FrontEnd`] whose objectives and intents come from the image's embedded
//! sources (the stdlib modules too), never from a file beside the plan, and
//! the [`Against`] record the plan image carries.
//!
//! The plan file is read as it is, with one line appended: `use` of the
//! image's root source, which the loader serves from the image under the
//! path `OBJ.kapi/NAME` (so diagnostics that point into it say where it
//! comes from). Any objective or intent the plan's own files declare is an
//! error (`KAPL0609`).

use crate::fs_loader::FsLoader;
use kapl_check::load::{join, normalize};
use kapl_check::{FrontEnd, LoadError, LoadedFile, Loader, ParamValues};
use kapl_image::{Against, Image};
use kapl_syntax::ast::Item;
use kapl_syntax::codes::{AGAINST_IMAGE, AGAINST_REBINDS_PARAM, AGAINST_REDEFINES};
use kapl_syntax::{Diagnostic, Origin};
use std::collections::BTreeMap;
use std::path::Path;

/// An objective image read for `--against`.
#[derive(Debug)]
pub struct ObjectiveImage {
    /// Its file name (recorded in the plan image).
    pub file: String,
    /// The verified image (it holds objective tables).
    pub image: Image,
}

/// Reads and verifies an objective image; the error is one line with its
/// code.
pub fn read(path: &Path) -> Result<ObjectiveImage, String> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| format!("error[{AGAINST_IMAGE}]: cannot read `{shown}`: {e}"))?;
    let image = kapl_image::read(&bytes)
        .map_err(|e| format!("error[{AGAINST_IMAGE}]: `{shown}`: {e} ({})", e.code()))?;
    if image.objective.is_none() {
        return Err(format!(
            "error[{AGAINST_IMAGE}]: `{shown}` is not an objective image (it holds plans, not objective tables); build the objectives alone with `kaplc build`"
        ));
    }
    let file = path
        .file_name()
        .map_or_else(|| shown.to_string(), |n| n.to_string_lossy().into_owned());
    Ok(ObjectiveImage { file, image })
}

impl ObjectiveImage {
    /// What a plan image built against this one records.
    pub fn against(&self) -> Against {
        Against {
            file: self.file.clone(),
            identity: self
                .image
                .objective
                .as_ref()
                .map_or([0; 32], |t| t.identity),
        }
    }
}

/// Serves the plan's files from disk, and the objective's sources and
/// stdlib modules from the image.
struct AgainstLoader {
    root: String,
    import: String,
    files: BTreeMap<String, Vec<u8>>,
    stdlib: BTreeMap<String, String>,
}

impl Loader for AgainstLoader {
    fn read(&mut self, path: &str) -> Result<LoadedFile, LoadError> {
        let key = normalize(path);
        if let Some(bytes) = self.files.get(&key) {
            return Ok(LoadedFile {
                key: format!("image:{key}"),
                bytes: bytes.clone(),
            });
        }
        let mut file = FsLoader.read(path)?;
        if key == self.root {
            file.bytes
                .extend_from_slice(format!("\nuse \"{}\"\n", self.import).as_bytes());
        }
        Ok(file)
    }

    fn stdlib_module(&mut self, name: &str) -> Option<String> {
        self.stdlib.get(name).cloned()
    }
}

/// The values a plan against `obj` is checked for: the objective's
/// recorded values, plus those `given` for the plan's own parameters. A
/// given value for an objective parameter must be the recorded one
/// (`KAPL0610`, exit 2): the objective was proved for its values.
pub fn values(obj: &ObjectiveImage, given: &ParamValues) -> Result<ParamValues, String> {
    let mut out = given.clone();
    for (name, value) in &obj.image.meta.params {
        match given.given.get(name) {
            Some(v) if v != value => {
                return Err(format!(
                    "error[{AGAINST_REBINDS_PARAM}]: `--param {name}={v}` rebinds a parameter of the objective image `{}`, built for `{name}={value}`\n  = help: drop the flag (the plan takes the objective's value), or rebuild the objective image with the new value",
                    obj.file
                ));
            }
            _ => {
                out.given.insert(name.clone(), value.clone());
            }
        }
    }
    Ok(out)
}

/// The values a check or build uses: those `given` on the command line,
/// and with `--against`, the objective image's (see [`values`]).
pub fn values_for(
    obj: Option<&ObjectiveImage>,
    given: Result<ParamValues, String>,
) -> Result<ParamValues, String> {
    let given = given?;
    match obj {
        Some(o) => values(o, &given),
        None => Ok(given),
    }
}

/// Checks and proves the plan file `path` against `obj`, for `values`
/// (see [`values`]).
pub fn check_file(path: &str, obj: &ObjectiveImage, values: &ParamValues) -> FrontEnd {
    let Some(tables) = &obj.image.objective else {
        return kapl_check::check_front_params(&mut FsLoader, path, values);
    };
    let mut files = BTreeMap::new();
    let mut stdlib = BTreeMap::new();
    let mut import = None;
    for f in &tables.sources {
        if let Some(m) = f
            .name
            .strip_prefix("<stdlib/")
            .and_then(|m| m.strip_suffix(".kapl>"))
        {
            stdlib.insert(m.to_string(), f.text.clone());
            continue;
        }
        let rel = format!("./{}/{}", obj.file, f.name.trim_start_matches('/'));
        files.insert(join(path, &rel), f.text.clone().into_bytes());
        import.get_or_insert(rel);
    }
    let mut loader = AgainstLoader {
        root: normalize(path),
        import: import.unwrap_or_default(),
        files,
        stdlib,
    };
    let mut fe = kapl_check::check_front_params(&mut loader, path, values);
    let image_prefix = normalize(&join(path, &format!("./{}/", obj.file)));
    let mut own = Vec::new();
    for (id, f) in fe.sources.iter() {
        if let Origin::File(p) = &f.origin
            && !normalize(p).starts_with(&format!("{image_prefix}/"))
        {
            own.push((id, f.text.clone()));
        }
    }
    let mut redefined = Vec::new();
    for (id, text) in own {
        for item in kapl_syntax::parse(id, &text).file.items {
            let (what, b) = match &item {
                Item::Objective(b) => ("objective", b),
                Item::Intent(b) => ("intent", b),
                _ => continue,
            };
            let in_image = obj.image.objectives.iter().any(|o| o.name == b.name.name)
                || obj.image.intents.iter().any(|i| i.name == b.name.name);
            let d = if in_image {
                Diagnostic::error(
                    AGAINST_REDEFINES,
                    format!("{what} `{}` is defined by the objective image", b.name.name),
                    b.name.span,
                    format!("`{}` defines it already", obj.file),
                )
            } else {
                Diagnostic::error(
                    AGAINST_REDEFINES,
                    format!("a plan built against an image declares no {what}"),
                    b.name.span,
                    format!("`{}` is not in `{}`", b.name.name, obj.file),
                )
            };
            redefined.push(d.with_help(format!(
                "remove it: plans built with `--against {}` go under its objectives and intents",
                obj.file
            )));
        }
    }
    if !redefined.is_empty() {
        // The redefinition says it better than "defined twice".
        fe.diagnostics
            .retain(|d| d.code != kapl_syntax::codes::DUPLICATE_DEFINITION);
        fe.diagnostics.extend(redefined);
        fe.policy = None;
        kapl_syntax::diag::sort(&mut fe.diagnostics);
        return fe;
    }
    kapl_prove::prove_front_end(&mut fe);
    fe
}
