//! The policy check and the starting policy, on scenario D's schema in real databases.

use cutover_db::{ConnectOptions, Database, IntrospectOptions, Schema};
use cutover_refresh::{Policy, Problem, check, check_filters, initial_policy};

const SCENARIO_D: &str = include_str!("../../../../examples/scenario-d-schema.sql");

async fn sqlite(sql: &str) -> (tempfile::TempDir, Database) {
    let (directory, path) = cutover_testing::sqlite_path("production.db");
    let options = ConnectOptions {
        create_sqlite: true,
        ..ConnectOptions::default()
    };
    let database = Database::connect_str(&format!("sqlite:{}", path.display()), &options)
        .await
        .expect("sqlite");
    database
        .execute_batch(sql)
        .await
        .expect("scenario D schema");
    (directory, database)
}

async fn schema(database: &Database) -> Schema {
    database
        .introspect(&IntrospectOptions::default())
        .await
        .expect("introspection")
}

#[tokio::test]
async fn the_starting_policy_classifies_everything_and_passes_its_own_check() {
    let (_directory, database) = sqlite(SCENARIO_D).await;
    let schema = schema(&database).await;
    let text = initial_policy(&schema, "sqlite:production.db", "2026-11-23");
    insta::assert_snapshot!(text);
    let policy = Policy::parse(&text).expect("the starting policy parses");
    assert_eq!(check(&policy, &schema, true), Vec::<Problem>::new());
    assert_eq!(
        check(&policy, &schema, false),
        vec![Problem::MissingSecret {
            variable: "CUTOVER_MASK_SECRET".into()
        }]
    );
}

#[tokio::test]
async fn a_column_added_after_the_policy_was_written_stops_the_run() {
    let (_directory, database) = sqlite(SCENARIO_D).await;
    let policy =
        Policy::parse(&initial_policy(&schema(&database).await, "x", "y")).expect("policy");
    database
        .execute_batch("ALTER TABLE patients ADD COLUMN emergency_contact TEXT")
        .await
        .expect("new column");
    let problems = check(&policy, &schema(&database).await, true);
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "table patients: column emergency_contact has no rule (every copied column must be classified)"
        ]
    );
}

#[tokio::test]
async fn every_problem_is_listed_at_once() {
    let (_directory, database) = sqlite(SCENARIO_D).await;
    let schema = schema(&database).await;
    let mut text = initial_policy(&schema, "x", "y");
    text = text.replace(
        "assessed_on = \"keep\"",
        "assessed_on = { rule = \"shift-date\", by = \"person_id\" }",
    );
    text = text.replace("outcome     = \"keep\"", "outcome     = \"shift-date\"");
    text = text.replace("conclusion    = \"keep\"", "conclusion    = \"null\"");
    text = text.replace(
        "[tables.\"settings\"]\naction = \"copy\"",
        "[tables.setting]\naction = \"skip\"\n[tables.\"settings\"]\naction = \"copy\"",
    );
    text = text.replace("value = \"keep\"", "value = \"keep\"\nvalu = \"keep\"");
    text = text.replace(
        "endpoint_url = \"keep\"",
        "endpoint_url = { rule = \"regex\", pattern = \"(unclosed\" }",
    );
    text = text.replace(
        "id                 = \"keep\"\nhealth_card_number",
        "id                 = \"hash\"\nhealth_card_number",
    );
    let policy = Policy::parse(&text).expect("policy");
    let problems: Vec<String> = check(&policy, &schema, true)
        .iter()
        .map(ToString::to_string)
        .collect();
    insta::assert_snapshot!(problems.join("\n"));
}

#[tokio::test]
async fn policy_syntax_errors_name_the_line() {
    let error = Policy::parse(
        "[tables.patients]\naction = \"copy\"\n[tables.patients.columns]\nid = \"hide\"\n",
    )
    .expect_err("unknown rule");
    assert!(error.starts_with("line 4: unknown rule hide"), "{error}");
    let error =
        Policy::parse("[tables.patients]\naction = \"move\"\n").expect_err("unknown action");
    assert!(
        error.starts_with("line 2: unknown variant `move`"),
        "{error}"
    );
}

#[tokio::test]
async fn a_where_the_source_refuses_is_a_problem() {
    let Some(postgres) = cutover_testing::postgres().await else {
        return;
    };
    cutover_testing::postgres_execute(
        &postgres.url,
        "CREATE TABLE assessments (id int PRIMARY KEY, assessed_on date NOT NULL)",
    )
    .await;
    let database = Database::connect_str(&postgres.url, &ConnectOptions::default())
        .await
        .expect("postgres");
    let schema = schema(&database).await;
    let policy = Policy::parse(
        "[tables.\"public.assessments\"]\naction = \"copy\"\nwhere = \"assessed_on < date '2026-01-01' AND\"\n\
         [tables.\"public.assessments\".columns]\nid = \"keep\"\nassessed_on = \"keep\"\n",
    )
    .expect("policy");
    assert!(check(&policy, &schema, true).is_empty());
    let problems = check_filters(&database, &policy, &schema).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].to_string().starts_with(
            "table public.assessments: the where condition does not work on the source"
        ),
        "{}",
        problems[0]
    );
}

#[tokio::test]
async fn the_scenario_d_example_policy_passes_its_check() {
    let (_directory, database) = sqlite(SCENARIO_D).await;
    let schema = schema(&database).await;
    let policy = Policy::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/scenario-d-policy.toml"
    )))
    .expect("the example policy parses");
    assert_eq!(check(&policy, &schema, true), Vec::<Problem>::new());
    assert!(check_filters(&database, &policy, &schema).await.is_empty());
    assert_eq!(
        policy.tables["documents"].action,
        cutover_refresh::Action::Skip
    );
}

#[tokio::test]
async fn a_rule_that_cannot_keep_a_unique_key_unique_is_refused_by_name() {
    let (_directory, database) = sqlite(
        "CREATE TABLE badges (id INTEGER PRIMARY KEY, code TEXT NOT NULL, site TEXT NOT NULL, \
         postal_code TEXT UNIQUE, card TEXT, issued DATE, UNIQUE (site, code)); \
         CREATE UNIQUE INDEX badges_card ON badges (card);",
    )
    .await;
    let schema = schema(&database).await;
    let policy = |rules: &str| {
        Policy::parse(&format!(
            "locale = \"en-US\"\n[tables.badges]\naction = \"copy\"\n[tables.badges.columns]\nid = \"keep\"\nissued = \"keep\"\n{rules}"
        ))
        .expect("policy")
    };
    let problems = check(
        &policy(
            "code = { rule = \"fixed\", value = \"X\" }\nsite = \"keep\"\npostal_code = \"fake:postal-code\"\ncard = \"fake:health-card\"",
        ),
        &schema,
        true,
    );
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "table badges: column card: fake:health-card has no shape in locale en-US (set locale = \"en-CA\" or \"fr-CA\", or use hash)",
            "table badges: column card is in the unique key (card) and its rule fake:health-card cannot keep it unique: fake:health-card has no unique form (its values repeat); use hash, keep, or a fake kind with a unique form",
            "table badges: column postal_code is in the unique key (postal_code) and its rule fake:postal-code cannot keep it unique: fake:postal-code has no unique form (its values repeat); use hash, keep, or a fake kind with a unique form",
            "table badges: column code is in the unique key (site, code) and its rule fixed cannot keep it unique: fixed gives every row the same value; use hash, keep, or a fake kind with a unique form",
        ]
    );
    // Rules that keep keys unique pass; so does null (NULLs never clash).
    assert_eq!(
        check(
            &policy(
                "code = \"hash\"\nsite = \"fake:city\"\npostal_code = \"null\"\ncard = \"hash\""
            ),
            &schema,
            true
        ),
        []
    );
    // A date shifted by another column of its key (itself kept distinct)
    // moves alike within each value of that column: the key stays unique.
    // Shifted by anything else, it can meet another.
    let (_visits_directory, visits) = sqlite(
        "CREATE TABLE visits (id INTEGER NOT NULL, patient INTEGER, day DATE NOT NULL, \
         PRIMARY KEY (id, day));",
    )
    .await;
    let visits = self::schema(&visits).await;
    let dated = |by: &str| {
        let policy = Policy::parse(&format!(
            "[tables.visits]\naction = \"copy\"\n[tables.visits.columns]\nid = \"keep\"\npatient = \"keep\"\n\
             day = {{ rule = \"shift-date\", by = \"{by}\" }}"
        ))
        .expect("policy");
        check(&policy, &visits, true)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(dated("id"), Vec::<String>::new());
    assert_eq!(
        dated("patient"),
        [
            "table visits: column day is in the unique key (id, day) and its rule shift-date cannot keep it unique: shift-date moves values by different amounts, so two can meet (unless `by` names another column of the key); use hash, keep, or a fake kind with a unique form",
        ]
    );
    // An unknown locale is refused when the policy is read, by line.
    let error = Policy::parse("locale = \"de-DE\"").expect_err("unknown locale");
    assert!(
        error.starts_with("line 1: unknown variant `de-DE`"),
        "{error}"
    );
    assert!(error.contains("en-CA"), "{error}");
}
