//! The fixed tables, typed for diesel's query builder: users, devices, sessions, conflicts,
//! aliases, resends, tombstones, sign-in failures and the laptop's own tables. They are
//! written here by hand to match the migrations (`tests/it/declaration.rs` holds the
//! synced tables to `domain::TABLES`; these are held by the queries that use them).
//! The synced tables are not here: their SQL is generated from the declaration.

diesel::table! {
    users (id) {
        id -> Text,
        name -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        is_conflict -> Bool,
        created_at -> BigInt,
        disabled_at -> Nullable<BigInt>,
        role -> Text,
    }
}

diesel::table! {
    web_sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> BigInt,
        seen_at -> BigInt,
    }
}

diesel::table! {
    devices (id) {
        id -> Text,
        user_id -> Text,
        label -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        last_session_id -> Nullable<Text>,
    }
}

diesel::table! {
    sync_sessions (id) {
        id -> Text,
        device_id -> Text,
        since -> Nullable<BigInt>,
        started -> BigInt,
        finished -> Nullable<BigInt>,
        status -> Text,
        clock_offset -> Nullable<BigInt>,
        upload_sha256 -> Nullable<Text>,
        upload_result -> Nullable<Text>,
        applied -> Nullable<BigInt>,
        unchanged -> Nullable<BigInt>,
        conflicts -> Nullable<BigInt>,
        downloaded -> Nullable<BigInt>,
        failure -> Nullable<Text>,
        cursor -> Nullable<Text>,
        cursor_from -> Nullable<Text>,
        client_version -> Nullable<Text>,
    }
}

diesel::table! {
    conflicts (id) {
        id -> Text,
        user_id -> Text,
        device_id -> Text,
        session_id -> Nullable<Text>,
        table_name -> Text,
        row_id -> Text,
        kind -> Text,
        client_id -> Nullable<Text>,
        base -> Nullable<BigInt>,
        server_updated -> Nullable<BigInt>,
        offline_updated -> Nullable<BigInt>,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        resolved_at -> Nullable<BigInt>,
        resolved_by -> Nullable<Text>,
        resolution -> Nullable<Text>,
        server_by -> Nullable<Text>,
    }
}

diesel::table! {
    conflict_fields (conflict_id, field) {
        conflict_id -> Text,
        field -> Text,
        base_known -> Bool,
        base_value -> Nullable<Text>,
        server_value -> Nullable<Text>,
        offline_value -> Nullable<Text>,
        choice -> Nullable<Text>,
        chosen_value -> Nullable<Text>,
    }
}

diesel::table! {
    aliases (table_name, client_id) {
        table_name -> Text,
        client_id -> Text,
        canonical_id -> Text,
        device_id -> Text,
        sent_in_session -> Nullable<Text>,
        acknowledged -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    resends (device_id, table_name, row_id) {
        device_id -> Text,
        table_name -> Text,
        row_id -> Text,
        sent_in_session -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    tombstones (table_name, id) {
        table_name -> Text,
        id -> Text,
        last_updated -> BigInt,
        row_data -> Nullable<Text>,
        changed_by -> Nullable<Text>,
        change_id -> BigInt,
    }
}

diesel::table! {
    /// No key of its own: rows are counted and pruned, never addressed one by one.
    sign_in_failures (scope, subject, at) {
        scope -> Text,
        subject -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    offline_changes (seq) {
        seq -> BigInt,
        table_name -> Text,
        row_id -> Text,
        kind -> Text,
        base -> Nullable<BigInt>,
        fields -> Text,
        changed_at -> BigInt,
    }
}

diesel::table! {
    offline_shadow (table_name, row_id, field) {
        table_name -> Text,
        row_id -> Text,
        field -> Text,
        value -> Nullable<Text>,
    }
}

diesel::table! {
    offline_conflicts (table_name, row_id, field) {
        table_name -> Text,
        row_id -> Text,
        field -> Text,
        local_value -> Nullable<Text>,
        server_value -> Nullable<Text>,
        marked_at -> BigInt,
    }
}

diesel::table! {
    offline_state (name) {
        name -> Text,
        value -> Nullable<Text>,
    }
}

diesel::table! {
    offline_held (table_name, row_id) {
        table_name -> Text,
        row_id -> Text,
        code -> Text,
        field -> Nullable<Text>,
        message -> Text,
        held_at -> BigInt,
    }
}

diesel::table! {
    offline_open_conflicts (id) {
        id -> Text,
        table_name -> Text,
        row_id -> Text,
        kind -> Text,
        recorded -> Text,
        server_by -> Nullable<Text>,
        server_at -> Nullable<Text>,
        fields -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    web_sessions,
    devices,
    sync_sessions,
    conflicts,
    conflict_fields
);
