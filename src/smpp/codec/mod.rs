//! SMPP v3.4 PDU codec (placeholder until the codec lands).
