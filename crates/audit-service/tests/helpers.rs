//! AuditHelper and scoped capture, read back from real storage.

use std::sync::Arc;

use audit_core::event::{Action, ActorType, Category, EventDraft, Severity};
use audit_core::json::{Object, Value};
use audit_core::stored::StoredEvent;
use audit_service::{
    Actor, AuditConfig, AuditHelper, AuditService, CaptureError, EvaluationStage, ScopeError, TimeRange, export_jsonl,
};
use audit_storage::local::LocalStore;

async fn read_back(dir: &std::path::Path, org: &str) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    export_jsonl(&LocalStore::new(dir), org, TimeRange::default(), &mut out).await.unwrap();
    out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| StoredEvent::parse_line(l).unwrap()).collect()
}

fn obj(k: &str, v: &str) -> Object {
    let mut o = Object::new();
    o.insert(k, Value::String(v.into()));
    o
}

#[tokio::test]
async fn every_helper_sets_type_category_action_and_severity() {
    let dir = tempfile::tempdir().unwrap();
    let service = AuditService::start(
        Arc::new(LocalStore::new(dir.path())),
        AuditConfig { enable_deduplication: false, ..Default::default() },
    )
    .await;
    let h = AuditHelper::new(service.clone());
    let me = Actor::user("user-1", Some("u1@example.com"));
    let o = "org-h";
    h.log_user_login(o, "user-1", Some("u1@example.com"), true, None).await.unwrap();
    h.log_user_login(o, "user-1", Some("u1@example.com"), false, Some(obj("reason", "bad password"))).await.unwrap();
    h.log_user_logout(o, &me).await.unwrap();
    h.log_api_key_created(o, "key-1", &me).await.unwrap();
    h.log_api_key_revoked(o, "key-1", &me).await.unwrap();
    h.log_sso(o, "okta", false, &me).await.unwrap();
    h.log_sso(o, "okta", true, &me).await.unwrap();
    h.log_trace_viewed(o, "p", "t-1", &me).await.unwrap();
    h.log_trace_deleted(o, "p", "t-1", obj("name", "Important Trace"), Some(obj("reason", "user request")), &me)
        .await
        .unwrap();
    h.log_trace_exported(o, "p", "t-1", "json", &me).await.unwrap();
    h.log_trace_shared(o, "p", "t-1", "u2@example.com", &me).await.unwrap();
    for stage in [
        EvaluationStage::Created,
        EvaluationStage::Viewed,
        EvaluationStage::Started,
        EvaluationStage::Completed,
        EvaluationStage::Failed,
    ] {
        h.log_evaluation(o, "p", "ev-1", stage, &me).await.unwrap();
    }
    h.log_project_created(o, "p", "My Project", &me).await.unwrap();
    h.log_project_updated(o, "p", "My Project", obj("retention_days", "30"), obj("retention_days", "90"), &me)
        .await
        .unwrap();
    h.log_project_deleted(o, "p", obj("name", "My Project"), &me).await.unwrap();
    h.log_retention_policy_updated(o, Some("p"), obj("days", "30"), obj("days", "90"), &me).await.unwrap();
    h.log_user_invited(o, "new@example.com", "viewer", &me).await.unwrap();
    h.log_user_removed(o, "user-2", Some("u2@example.com"), &me).await.unwrap();
    h.log_user_role_changed(o, "user-2", None, "viewer", "editor", &me).await.unwrap();
    h.log_organization_settings_updated(o, obj("sso", "off"), obj("sso", "on"), &me).await.unwrap();
    h.log_billing_plan_changed(o, "team", "enterprise", &me).await.unwrap();
    h.log_baseline_updated(o, "p", "b-1", obj("f1", "0.8"), obj("f1", "0.9"), &Actor::system()).await.unwrap();
    service.stop().await;

    use Action::*;
    use Category::*;
    use Severity::*;
    let expected = [
        ("user.login", Auth, Login, Info),
        ("user.login_failed", Auth, Login, Critical),
        ("user.logout", Auth, Logout, Info),
        ("api_key.created", Auth, Create, Info),
        ("api_key.revoked", Auth, Delete, Warning),
        ("sso.initiated", Auth, Login, Info),
        ("sso.completed", Auth, Login, Info),
        ("trace.viewed", Data, Read, Info),
        ("trace.deleted", Data, Delete, Warning),
        ("trace.exported", Data, Export, Warning),
        ("trace.shared", Data, Share, Warning),
        ("evaluation.created", Data, Create, Info),
        ("evaluation.viewed", Data, Read, Info),
        ("evaluation.started", Eval, Execute, Info),
        ("evaluation.completed", Eval, Execute, Info),
        ("evaluation.failed", Eval, Execute, Info),
        ("project.created", Config, Create, Info),
        ("project.updated", Config, Update, Info),
        ("project.deleted", Config, Delete, Warning),
        ("retention_policy.updated", Config, Update, Info),
        ("user.invited", Admin, Create, Info),
        ("user.removed", Admin, Delete, Warning),
        ("user.role_changed", Admin, Update, Warning),
        ("organization.settings_updated", Admin, Update, Info),
        ("billing.plan_changed", Admin, Update, Info),
        ("baseline.updated", Eval, Update, Info),
    ];
    let events = read_back(dir.path(), o).await;
    assert_eq!(events.len(), expected.len());
    for (e, (t, c, a, s)) in events.iter().zip(expected) {
        assert_eq!(
            (e.body.draft().event_type.as_str(), e.body.category(), e.body.action(), e.body.severity()),
            (t, c, a, s)
        );
    }
    assert_eq!(events[1].body.actor_type(), ActorType::Anonymous, "a failed login's identity is only claimed");
    assert_eq!(events[8].body.draft().previous_state, Some(obj("name", "Important Trace").into()));
    assert_eq!(events[22].body.draft().new_state, Some(obj("role", "editor").into()));
}

fn project_update() -> EventDraft {
    EventDraft {
        organization_id: "org-s".into(),
        event_type: "project.updated".into(),
        action: Some(Action::Update),
        actor_type: Some(ActorType::User),
        actor_id: Some("user-789".into()),
        resource_id: Some("proj-456".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn scoped_capture_records_states_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let service = AuditService::start(Arc::new(LocalStore::new(dir.path())), AuditConfig::default()).await;

    let name = service
        .audited(project_update(), async |scope| {
            scope.before = Some(obj("name", "Old Name"));
            scope.after = Some(obj("name", "New Name"));
            Ok::<_, String>("New Name")
        })
        .await
        .unwrap();
    assert_eq!(name, "New Name");

    let failed = service
        .audited(project_update(), async |scope| {
            scope.before = Some(obj("name", "New Name"));
            Err::<(), _>("database unavailable".to_owned())
        })
        .await;
    assert!(matches!(failed, Err(ScopeError::Operation(ref e)) if e == "database unavailable"));

    let mut ran = false;
    let invalid = EventDraft { action: None, ..project_update() };
    let refused = service
        .audited(invalid, async |_| {
            ran = true;
            Ok::<_, String>(())
        })
        .await;
    assert!(matches!(refused, Err(ScopeError::Audit(CaptureError::Invalid(_)))));
    assert!(!ran, "an invalid event fails before the operation runs");
    service.stop().await;

    let events = read_back(dir.path(), "org-s").await;
    assert_eq!(events.len(), 2);
    let ok = events[0].body.draft();
    assert_eq!(ok.previous_state, Some(obj("name", "Old Name").into()));
    assert_eq!(ok.new_state, Some(obj("name", "New Name").into()));
    assert_eq!(ok.metadata.as_ref().unwrap().to_object().get("outcome"), Some(&Value::String("success".into())));
    let bad = events[1].body.draft();
    assert_eq!(bad.metadata.as_ref().unwrap().to_object().get("outcome"), Some(&Value::String("failure".into())));
    assert_eq!(
        bad.metadata.as_ref().unwrap().to_object().get("error"),
        Some(&Value::String("database unavailable".into()))
    );
    assert_eq!(bad.new_state, None);
}
