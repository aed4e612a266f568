//! aiprod planner (being written).
