//! What the two transports of the household and coordinator menus (a USSD hop, an SMS
//! conversation) share around the engine's driver ([`crate::engine::drive`]): one error
//! type. The rule for which projects a conversation lists is one SQL function,
//! `listed_projects(community, since)` (migration `20261130001000_listed_projects.sql`):
//! open projects, and those closed after `since` (the start of the window a conversation
//! may have begun in), so that the numbers a caller saw stay the same while they answer.

use crate::{actions::ActionError, engine::drive::DriveError};

/// Why a hop or a text could not be answered with a screen.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("action: {0}")]
    Action(#[from] ActionError),
    #[error("menu: {0}")]
    Menu(String),
    /// A USSD hop's deadline passed.
    #[error("the database did not answer in time")]
    Timeout,
}

impl From<DriveError> for ConversationError {
    fn from(e: DriveError) -> ConversationError {
        ConversationError::Menu(e.to_string())
    }
}
