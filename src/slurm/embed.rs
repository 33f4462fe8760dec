//! Embedding plans: shards compute a model's audio embeddings (today the AST's pooled vectors, `ast-pooled`, which
//! the ast-head student trains on) into their parts; the merge fills the workspace's embedding cache
//! (`store::embeddings`), keyed by the weights' checksum exactly as a local computation keys it, so a later
//! `dams train --kind ast-head` finds every vector cached.

use anyhow::{Context, Result, bail};

use super::plan::{self, LoadedPlan};

/// The models whose embeddings a plan can shard: `(model, embedding kind)`.
pub const MODELS: &[(&str, &str)] = &[("ast", crate::student::ast_head::EMBEDDING_KIND)];

/// Open the model of an embedding plan on `device`, re-hashing its installed weights.
pub fn open_model(model: &str, device: &str, dirs: &crate::config::Dirs) -> Result<crate::teachers::ast::AstTeacher> {
    if model != "ast" {
        bail!("no embedding model '{model}' (models: {})", MODELS.iter().map(|m| m.0).collect::<Vec<_>>().join(", "));
    }
    let cache = dirs.model_cache();
    if crate::teachers::ast::install::installed(&cache).is_none() {
        bail!(
            "the AST is not installed in {}: `dams teachers pull ast` or `dams teachers add ast --from DIR`",
            cache.display()
        );
    }
    let dir = crate::teachers::ast::install::install_dir(&cache);
    // Hashes model.safetensors: the checksum every shard records and the merge compares with the plan's.
    let src = crate::student::ast_head::locate_ast(Some(&dir))?;
    let choice: crate::engine::DeviceChoice = device.parse().map_err(anyhow::Error::msg)?;
    let engine = crate::engine::Engine::select(choice).map_err(anyhow::Error::msg)?;
    let (ast, _) = crate::student::ast_head::open_ast(&src, engine, None)?;
    Ok(ast)
}

/// Freeze an embedding job into a new run folder: the segments (of `splits`) whose vectors the cache lacks.
pub fn create_embed_plan(ws: &crate::workspace::Workspace, p: super::NewScorePlan<'_>) -> Result<LoadedPlan> {
    let model = p.job.teacher.clone();
    let kind = MODELS
        .iter()
        .find(|m| m.0 == model)
        .map(|m| m.1.to_string())
        .with_context(|| format!("--embed: no embedding model '{model}' (models: ast)"))?;
    let ast = open_model(&model, &p.job.device, p.dirs)?;
    use crate::teachers::Teacher;
    let checksum = ast.checksum().to_string();
    let teacher = plan::TeacherInfo {
        id: model.clone(),
        version: ast.version(),
        checksum: checksum.clone(),
        settings: serde_json::json!({ "embedding": kind }).to_string(),
        zero_shot: false,
        raw_vocab: None,
        label_source: String::new(),
        default_thresholds: None,
    };
    drop(ast);
    let store = ws.open_store()?;
    let have = store.embedded_segments(&checksum, &kind)?;
    drop(store);
    super::write_plan(ws, p, plan::KIND_EMBED, Some(kind), teacher, |s| !have.contains(&s.id))
}
