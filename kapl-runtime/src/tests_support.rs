//! Real images for unit tests: a policy compiled by the front end and
//! codegen (no prover).

#![allow(clippy::panic)]

/// Compiles `text` (panics with the diagnostics when it does not check).
pub fn image(text: &str) -> kapl_image::Image {
    let mut loader = kapl_check::MemoryLoader::new().with("/t.kapl", text);
    let fe = kapl_check::check_front(&mut loader, "/t.kapl");
    let Some(policy) = fe.policy else {
        panic!("the test policy does not check: {:?}", fe.diagnostics);
    };
    match kapl_codegen::compile(
        &policy,
        &fe.sources,
        &kapl_codegen::Options {
            policy: "t".into(),
            compiler: "test".into(),
        },
    ) {
        Ok(out) => out.image,
        Err(d) => panic!("{d:?}"),
    }
}

/// Compiles `text` twice: its objectives alone (an objective image, with
/// identity) and the whole policy (the plan image).
pub fn images(text: &str) -> (kapl_image::Image, kapl_image::Image) {
    let mut loader = kapl_check::MemoryLoader::new().with("/t.kapl", text);
    let fe = kapl_check::check_front(&mut loader, "/t.kapl");
    let Some(policy) = fe.policy else {
        panic!("the test policy does not check: {:?}", fe.diagnostics);
    };
    let opts = kapl_codegen::Options {
        policy: "t".into(),
        compiler: "test".into(),
    };
    let mut objectives = policy.clone();
    objectives.plans.clear();
    objectives.grants.clear();
    let obj = match kapl_codegen::compile(&objectives, &fe.sources, &opts) {
        Ok(out) => out.image,
        Err(d) => panic!("{d:?}"),
    };
    let plan = match kapl_codegen::compile(&policy, &fe.sources, &opts) {
        Ok(out) => out.image,
        Err(d) => panic!("{d:?}"),
    };
    (obj, plan)
}
