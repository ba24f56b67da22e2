//! The protocol's error codes (`<error code="...">`), one enum: every code a client can
//! meet is here, and docs/protocol.md lists them all (a test holds the two together).

/// Why the device API refused or failed a request, as the `code` a client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Malformed,
    Doctype,
    UnsupportedVersion,
    TooLarge,
    MissingFile,
    MissingTable,
    UnknownTable,
    UnknownField,
    DuplicateField,
    InvalidId,
    InvalidValue,
    InvalidCharacter,
    InvalidWas,
    InvalidTimestamp,
    MissingField,
    MissingBase,
    MissingParent,
    UnknownRow,
    EmptyEdit,
    FieldNotEditable,
    CreateNotAllowed,
    DeleteNotAllowed,
    DuplicateRow,
    UnexpectedAlias,
    NaturalKeyTaken,
    ValueTooLong,
    EventTooLarge,
    Unauthorized,
    AccountDisabled,
    TooManyAttempts,
    NotFound,
    SessionFailed,
    SessionAbandoned,
    SessionComplete,
    AlreadyUploaded,
    InvalidClock,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::Malformed,
        ErrorCode::Doctype,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TooLarge,
        ErrorCode::MissingFile,
        ErrorCode::MissingTable,
        ErrorCode::UnknownTable,
        ErrorCode::UnknownField,
        ErrorCode::DuplicateField,
        ErrorCode::InvalidId,
        ErrorCode::InvalidValue,
        ErrorCode::InvalidCharacter,
        ErrorCode::InvalidWas,
        ErrorCode::InvalidTimestamp,
        ErrorCode::MissingField,
        ErrorCode::MissingBase,
        ErrorCode::MissingParent,
        ErrorCode::UnknownRow,
        ErrorCode::EmptyEdit,
        ErrorCode::FieldNotEditable,
        ErrorCode::CreateNotAllowed,
        ErrorCode::DeleteNotAllowed,
        ErrorCode::DuplicateRow,
        ErrorCode::UnexpectedAlias,
        ErrorCode::NaturalKeyTaken,
        ErrorCode::ValueTooLong,
        ErrorCode::EventTooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::AccountDisabled,
        ErrorCode::TooManyAttempts,
        ErrorCode::NotFound,
        ErrorCode::SessionFailed,
        ErrorCode::SessionAbandoned,
        ErrorCode::SessionComplete,
        ErrorCode::AlreadyUploaded,
        ErrorCode::InvalidClock,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Malformed => "malformed",
            Doctype => "doctype",
            UnsupportedVersion => "unsupported-version",
            TooLarge => "too-large",
            MissingFile => "missing-file",
            MissingTable => "missing-table",
            UnknownTable => "unknown-table",
            UnknownField => "unknown-field",
            DuplicateField => "duplicate-field",
            InvalidId => "invalid-id",
            InvalidValue => "invalid-value",
            InvalidCharacter => "invalid-character",
            InvalidWas => "invalid-was",
            InvalidTimestamp => "invalid-timestamp",
            MissingField => "missing-field",
            MissingBase => "missing-base",
            MissingParent => "missing-parent",
            UnknownRow => "unknown-row",
            EmptyEdit => "empty-edit",
            FieldNotEditable => "field-not-editable",
            CreateNotAllowed => "create-not-allowed",
            DeleteNotAllowed => "delete-not-allowed",
            DuplicateRow => "duplicate-row",
            UnexpectedAlias => "unexpected-alias",
            NaturalKeyTaken => "natural-key-taken",
            ValueTooLong => "value-too-long",
            EventTooLarge => "event-too-large",
            Unauthorized => "unauthorized",
            AccountDisabled => "account-disabled",
            TooManyAttempts => "too-many-attempts",
            NotFound => "not-found",
            SessionFailed => "session-failed",
            SessionAbandoned => "session-abandoned",
            SessionComplete => "session-complete",
            AlreadyUploaded => "already-uploaded",
            InvalidClock => "invalid-clock",
            Unavailable => "unavailable",
            Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_code_is_one_word_and_documented() {
        let doc = include_str!("../../docs/protocol.md");
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let word = code.as_str();
            assert!(seen.insert(word), "{word} twice");
            assert!(
                word.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{word}"
            );
            assert!(
                doc.contains(&format!("`{word}`")),
                "docs/protocol.md lists `{word}`"
            );
        }
    }
}
