//! The one list of teachers.
//!
//! Registering a teacher is one line in [`teachers`]: its folder's `DESCRIPTOR` (id, description, label source,
//! options with defaults and help, devices, how to install its weights, how to open it). `dams teachers`,
//! `dams teachers pull|add`, `dams score --teacher <id> --option k=v`, the TUI's score form, thresholds, eval and
//! pseudo-labels all read this list; nothing else names a teacher. This module sits above `teachers` and `student`
//! (students register here like any teacher), so neither of those imports the other's list.
//!
//! [`register`] adds a descriptor at run time (a plug-in, or a test's fake teacher).

use std::sync::RwLock;

use crate::labels::LabelSource;
use crate::teachers::{InstallState, OpenContext, Teacher, TeacherDescriptor, TeacherError};

static EXTRA: RwLock<Vec<&'static TeacherDescriptor>> = RwLock::new(Vec::new());

/// Every teacher dams knows, in display order.
pub fn teachers() -> Vec<&'static TeacherDescriptor> {
    let mut v: Vec<&'static TeacherDescriptor> = vec![
        &crate::teachers::builtin::DESCRIPTOR,
        &crate::teachers::ast::DESCRIPTOR,
        &crate::teachers::ina::DESCRIPTOR,
        &crate::teachers::clap::DESCRIPTOR,
        &crate::teachers::whisper_at::DESCRIPTOR,
        &crate::teachers::m2d::DESCRIPTOR,
    ];
    #[cfg(feature = "burn")]
    v.push(&crate::student::teacher::DESCRIPTOR);
    for d in EXTRA.read().unwrap_or_else(|p| p.into_inner()).iter() {
        if !v.iter().any(|x| x.id == d.id) {
            v.push(d);
        }
    }
    v
}

/// Add a teacher at run time (replacing an earlier registration of the same id).
pub fn register(d: &'static TeacherDescriptor) {
    let mut g = EXTRA.write().unwrap_or_else(|p| p.into_inner());
    g.retain(|x| x.id != d.id);
    g.push(d);
}

/// The descriptor of teacher `id` (a family's instance id finds the family).
pub fn find(id: &str) -> Result<&'static TeacherDescriptor, TeacherError> {
    teachers().into_iter().find(|d| d.matches(id)).ok_or_else(|| TeacherError::Unknown(id.to_string()))
}

/// Open teacher `id` in `ctx` (device checked against the teacher's devices; options already parsed).
pub fn open(id: &str, ctx: &OpenContext) -> Result<Box<dyn Teacher>, TeacherError> {
    let d = find(id)?;
    d.check_device(&ctx.device)?;
    if let InstallState::Missing(how) = (d.state)(ctx)
        && !d.family
    {
        return Err(TeacherError::NotInstalled { id: id.into(), hint: format!("install it with `{how}`") });
    }
    (d.open)(id, ctx)
}

/// Open teacher `id` with `options` given as `name=value` pairs (checked against its declared options).
pub fn open_with(id: &str, ctx: &OpenContext, options: &[(String, String)]) -> Result<Box<dyn Teacher>, TeacherError> {
    let d = find(id)?;
    let opts = d.parse_options(options.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    open(id, &ctx.clone().with_options(opts))
}

/// One listed teacher: a plain teacher, or one instance of a family.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub descriptor: &'static TeacherDescriptor,
    pub state: InstallState,
}

/// Every teacher with its install state in `ctx`; families are listed once per instance (or once, not usable, when
/// they have none).
pub fn list(ctx: &OpenContext) -> Vec<Listed> {
    let mut out = Vec::new();
    for d in teachers() {
        let state = (d.state)(ctx);
        match d.instances.map(|f| f(ctx)) {
            Some(ids) if !ids.is_empty() => {
                out.extend(ids.into_iter().map(|id| Listed { id, descriptor: d, state: state.clone() }))
            }
            _ => out.push(Listed { id: d.id.to_string(), descriptor: d, state }),
        }
    }
    out
}

/// The teachers that can score now (installed or embedded; a family's instances), in display order.
pub fn usable(ctx: &OpenContext) -> Vec<String> {
    list(ctx).into_iter().filter(|l| l.state.usable() && l.descriptor.matches(&l.id)).map(|l| l.id).collect()
}

/// The label source of teacher `id`'s pseudo-labels (`<id>_pseudo` for teachers dams does not know).
pub fn label_source(id: &str) -> LabelSource {
    match find(id) {
        Ok(d) => d.label_source_of(id),
        Err(_) => LabelSource::for_teacher(id, false),
    }
}

/// The vocabulary of teacher `id`'s raw outputs, known without opening it.
pub fn raw_vocab(id: &str) -> Option<&'static str> {
    find(id).ok().and_then(|d| d.raw_vocab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_opens_what_it_lists() {
        let cache = tempfile::tempdir().unwrap();
        let ctx = OpenContext::new(cache.path());
        let l = list(&ctx);
        assert!(l.iter().any(|t| t.id == "builtin" && t.state == InstallState::Embedded));
        assert!(l.iter().any(|t| t.id == "ast" && matches!(t.state, InstallState::Missing(_))));
        assert!(usable(&ctx).contains(&"builtin".to_string()));
        assert!(!usable(&ctx).contains(&"ast".to_string()), "nothing installed in a fresh cache");
        let t = open("builtin", &ctx).unwrap();
        assert_eq!(t.label_source().as_str(), "builtin_pseudo");
        assert!(t.checksum().starts_with("sha256:"));
        assert!(matches!(open("ast", &ctx), Err(TeacherError::NotInstalled { .. })));
        assert!(matches!(open("nope", &ctx), Err(TeacherError::Unknown(_))));
        let e = open("builtin", &ctx.clone().with_device("gpu")).err().unwrap().to_string();
        assert!(e.contains("device 'gpu'") && e.contains("runs on cpu"), "{e}");
        let e = open_with("builtin", &ctx, &[("pooling".into(), "max".into())]).err().unwrap().to_string();
        assert!(e.contains("unknown option 'pooling'") && e.contains("weights"), "{e}");
        let e = open_with("ast", &ctx, &[("pooling".into(), "median".into())]).err().unwrap().to_string();
        assert!(e.contains("expected one of noisy_or, max, mean"), "{e}");
        assert_eq!(raw_vocab("ast"), Some(crate::teachers::raw::AUDIOSET_527));
        assert_eq!(raw_vocab("builtin"), None);
        assert_eq!(label_source("student:s1").as_str(), "student_s1_pseudo");
    }
}
