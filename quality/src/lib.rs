//! aiprod quality (being written).
