//! Which step a session starts in, and which step moves the plan allows.
//!
//! Input: a plan, the step asked for, and the steps visited so far.
//! Output: the step's index, or a [`StepError`] (KAPL0806) saying why not.
//! Nothing here touches the kernel: the session checks a move here before
//! it builds anything for the new step.

use kapl_image::{Image, Plan};

/// A refused plan, start step or step move (KAPL0806).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The image has no such plan.
    #[error("no plan `{plan}` in the image (plans: {})", known.join(", "))]
    NoPlan {
        /// The name asked for.
        plan: String,
        /// The plans there are.
        known: Vec<String>,
    },
    /// The plan has no such step.
    #[error("plan `{plan}` has no step `{step}` (steps: {})", known.join(", "))]
    NoStep {
        /// The plan.
        plan: String,
        /// The name asked for.
        step: String,
        /// The steps there are.
        known: Vec<String>,
    },
    /// A session cannot start in a step that comes after others.
    #[error("a session cannot start in step `{step}`: it comes after {}", after.join(", "))]
    NotAStart {
        /// The step.
        step: String,
        /// The steps it comes after.
        after: Vec<String>,
    },
    /// The plan has no step without `after`.
    #[error("plan `{plan}` has no start step")]
    NoStart {
        /// The plan.
        plan: String,
    },
    /// Several start steps and none chosen.
    #[error("plan `{plan}` has several start steps; pick one with --step ({})", starts.join(", "))]
    SeveralStarts {
        /// The plan.
        plan: String,
        /// Its start steps.
        starts: Vec<String>,
    },
    /// A move to a step whose predecessors have not all been active.
    #[error(
        "step `{step}` is refused: it comes after {} which has not been active; the session stays in step `{current}`",
        missing.join(", ")
    )]
    NotYet {
        /// The step asked for.
        step: String,
        /// Predecessors not yet active.
        missing: Vec<String>,
        /// The current step.
        current: String,
    },
    /// A move to the current step.
    #[error("step `{step}` is already the current step")]
    AlreadyCurrent {
        /// The step.
        step: String,
    },
    /// The step's authority would reach what the runtime stands on.
    #[error("step `{step}` is refused: {reason}")]
    Unsafe {
        /// The step.
        step: String,
        /// What it would reach.
        reason: String,
    },
}

impl StepError {
    /// How to fix it.
    pub fn help(&self) -> Option<String> {
        match self {
            StepError::NoPlan { .. } => {
                Some("`kaplc inspect IMAGE` lists the image's plans and steps".into())
            }
            StepError::NoStep { .. } => Some("`kapl-run status` shows the current step".into()),
            StepError::NotYet { missing, .. } => {
                Some(format!("move to {} first", missing.join(" or ")))
            }
            StepError::Unsafe { .. } => {
                Some("narrow the grant with `except`, or grant what the step needs below it".into())
            }
            _ => None,
        }
    }
}

fn names(plan: &Plan, idx: impl Iterator<Item = u32>) -> Vec<String> {
    idx.filter_map(|a| plan.steps.get(a as usize).map(|s| s.name.clone()))
        .collect()
}

/// The plan named `name` and its index.
pub fn plan<'a>(image: &'a Image, name: &str) -> Result<(u32, &'a Plan), StepError> {
    image.plan(name).ok_or_else(|| StepError::NoPlan {
        plan: name.to_string(),
        known: image.plans.iter().map(|p| p.name.clone()).collect(),
    })
}

/// The index of step `name` of `plan`.
pub fn index(plan: &Plan, name: &str) -> Result<u32, StepError> {
    plan.step_index(name).ok_or_else(|| StepError::NoStep {
        plan: plan.name.clone(),
        step: name.to_string(),
        known: plan.steps.iter().map(|s| s.name.clone()).collect(),
    })
}

/// The step a session of `plan` starts in: `asked`, which must come after
/// no other step, or else the plan's only start step.
pub fn start(plan: &Plan, asked: Option<&str>) -> Result<u32, StepError> {
    if let Some(name) = asked {
        let i = index(plan, name)?;
        let after = plan.steps.get(i as usize).map_or(&[][..], |s| &s.after[..]);
        if !after.is_empty() {
            return Err(StepError::NotAStart {
                step: name.to_string(),
                after: names(plan, after.iter().copied()),
            });
        }
        return Ok(i);
    }
    let starts: Vec<u32> = plan.start_steps().map(|(i, _)| i).collect();
    match starts.as_slice() {
        [i] => Ok(*i),
        [] => Err(StepError::NoStart {
            plan: plan.name.clone(),
        }),
        many => Err(StepError::SeveralStarts {
            plan: plan.name.clone(),
            starts: names(plan, many.iter().copied()),
        }),
    }
}

/// Checks a move from `current` to step `name`, given which steps have been
/// active (`visited`, by index); returns the new step's index.
pub fn check_move(
    plan: &Plan,
    current: u32,
    visited: &[bool],
    name: &str,
) -> Result<u32, StepError> {
    let i = index(plan, name)?;
    let after = plan.steps.get(i as usize).map_or(&[][..], |s| &s.after[..]);
    let missing = names(
        plan,
        after
            .iter()
            .copied()
            .filter(|a| !visited.get(*a as usize).copied().unwrap_or(false)),
    );
    let current_name = plan
        .steps
        .get(current as usize)
        .map_or_else(|| "?".to_string(), |s| s.name.clone());
    if !missing.is_empty() {
        return Err(StepError::NotYet {
            step: name.to_string(),
            missing,
            current: current_name,
        });
    }
    if i == current {
        return Err(StepError::AlreadyCurrent {
            step: name.to_string(),
        });
    }
    Ok(i)
}
