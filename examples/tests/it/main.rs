//! The examples' own checks: what they write is what they say.

mod own_entity;
