//! Postfix policy delegation requests (`name=value` lines ended by an empty line).
