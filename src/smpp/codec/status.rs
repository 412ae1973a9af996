//! SMPP v3.4 `command_status` values (§5.1.3).
//!
//! The v5.0 names of the TLV errors (`ESME_RINVTLVSTREAM`, ...) are aliases of
//! the v3.4 "optional parameter" ones; both spellings appear in peers' logs.

/// No error.
pub const ESME_ROK: u32 = 0x0000_0000;
/// Message length is invalid.
pub const ESME_RINVMSGLEN: u32 = 0x0000_0001;
/// Command length is invalid.
pub const ESME_RINVCMDLEN: u32 = 0x0000_0002;
/// Invalid command ID.
pub const ESME_RINVCMDID: u32 = 0x0000_0003;
/// Incorrect bind status for the given command.
pub const ESME_RINVBNDSTS: u32 = 0x0000_0004;
/// ESME already in bound state.
pub const ESME_RALYBND: u32 = 0x0000_0005;
/// Invalid priority flag.
pub const ESME_RINVPRTFLG: u32 = 0x0000_0006;
/// Invalid registered delivery flag.
pub const ESME_RINVREGDLVFLG: u32 = 0x0000_0007;
/// System error (Kannel and most ESMEs retry it).
pub const ESME_RSYSERR: u32 = 0x0000_0008;
/// Invalid source address.
pub const ESME_RINVSRCADR: u32 = 0x0000_000A;
/// Invalid destination address.
pub const ESME_RINVDSTADR: u32 = 0x0000_000B;
/// Message ID is invalid.
pub const ESME_RINVMSGID: u32 = 0x0000_000C;
/// Bind failed.
pub const ESME_RBINDFAIL: u32 = 0x0000_000D;
/// Invalid password.
pub const ESME_RINVPASWD: u32 = 0x0000_000E;
/// Invalid system ID.
pub const ESME_RINVSYSID: u32 = 0x0000_000F;
/// cancel_sm failed.
pub const ESME_RCANCELFAIL: u32 = 0x0000_0011;
/// replace_sm failed.
pub const ESME_RREPLACEFAIL: u32 = 0x0000_0013;
/// Message queue full.
pub const ESME_RMSGQFUL: u32 = 0x0000_0014;
/// Invalid service type.
pub const ESME_RINVSERTYP: u32 = 0x0000_0015;
/// Invalid number of destinations.
pub const ESME_RINVNUMDESTS: u32 = 0x0000_0033;
/// Invalid distribution list name.
pub const ESME_RINVDLNAME: u32 = 0x0000_0034;
/// Destination flag is invalid (submit_multi).
pub const ESME_RINVDESTFLAG: u32 = 0x0000_0040;
/// Invalid "submit with replace" request.
pub const ESME_RINVSUBREP: u32 = 0x0000_0042;
/// Invalid esm_class field data.
pub const ESME_RINVESMCLASS: u32 = 0x0000_0043;
/// Cannot submit to distribution list.
pub const ESME_RCNTSUBDL: u32 = 0x0000_0044;
/// submit_sm or submit_multi failed.
pub const ESME_RSUBMITFAIL: u32 = 0x0000_0045;
/// Invalid source address TON.
pub const ESME_RINVSRCTON: u32 = 0x0000_0048;
/// Invalid source address NPI.
pub const ESME_RINVSRCNPI: u32 = 0x0000_0049;
/// Invalid destination address TON.
pub const ESME_RINVDSTTON: u32 = 0x0000_0050;
/// Invalid destination address NPI.
pub const ESME_RINVDSTNPI: u32 = 0x0000_0051;
/// Invalid system_type field.
pub const ESME_RINVSYSTYP: u32 = 0x0000_0053;
/// Invalid replace_if_present flag.
pub const ESME_RINVREPFLAG: u32 = 0x0000_0054;
/// Invalid number of messages.
pub const ESME_RINVNUMMSGS: u32 = 0x0000_0055;
/// Throttling error: the ESME exceeded its allowed rate (senders retry it).
pub const ESME_RTHROTTLED: u32 = 0x0000_0058;
/// Invalid scheduled delivery time.
pub const ESME_RINVSCHED: u32 = 0x0000_0061;
/// Invalid message validity period (expiry time).
pub const ESME_RINVEXPIRY: u32 = 0x0000_0062;
/// Predefined message invalid or not found.
pub const ESME_RINVDFTMSGID: u32 = 0x0000_0063;
/// ESME receiver temporary application error.
pub const ESME_RX_T_APPN: u32 = 0x0000_0064;
/// ESME receiver permanent application error.
pub const ESME_RX_P_APPN: u32 = 0x0000_0065;
/// ESME receiver reject message error (deliver_sm_resp only).
pub const ESME_RX_R_APPN: u32 = 0x0000_0066;
/// query_sm request failed.
pub const ESME_RQUERYFAIL: u32 = 0x0000_0067;
/// Error in the optional part of the PDU body (the TLV stream).
pub const ESME_RINVOPTPARSTREAM: u32 = 0x0000_00C0;
/// Optional parameter (TLV) not allowed.
pub const ESME_ROPTPARNOTALLWD: u32 = 0x0000_00C1;
/// Invalid parameter (TLV) length.
pub const ESME_RINVPARLEN: u32 = 0x0000_00C2;
/// Expected optional parameter (TLV) missing.
pub const ESME_RMISSINGOPTPARAM: u32 = 0x0000_00C3;
/// Invalid optional parameter (TLV) value.
pub const ESME_RINVOPTPARAMVAL: u32 = 0x0000_00C4;
/// Delivery failure (data_sm_resp).
pub const ESME_RDELIVERYFAILURE: u32 = 0x0000_00FE;
/// Unknown error.
pub const ESME_RUNKNOWNERR: u32 = 0x0000_00FF;

/// SMPP v5.0 name of [`ESME_RINVOPTPARSTREAM`].
pub const ESME_RINVTLVSTREAM: u32 = ESME_RINVOPTPARSTREAM;
/// SMPP v5.0 name of [`ESME_ROPTPARNOTALLWD`].
pub const ESME_RTLVNOTALLWD: u32 = ESME_ROPTPARNOTALLWD;
/// SMPP v5.0 name of [`ESME_RINVPARLEN`].
pub const ESME_RINVTLVLEN: u32 = ESME_RINVPARLEN;
/// SMPP v5.0 name of [`ESME_RMISSINGOPTPARAM`].
pub const ESME_RMISSINGTLV: u32 = ESME_RMISSINGOPTPARAM;
/// SMPP v5.0 name of [`ESME_RINVOPTPARAMVAL`].
pub const ESME_RINVTLVVAL: u32 = ESME_RINVOPTPARAMVAL;

/// First status of the range reserved for vendor-specific errors.
pub const VENDOR_FIRST: u32 = 0x0000_0400;
/// Last status of the range reserved for vendor-specific errors.
pub const VENDOR_LAST: u32 = 0x0000_04FF;

/// The spec name of a status, for logs; `None` for reserved and vendor values.
pub fn name(status: u32) -> Option<&'static str> {
    Some(match status {
        ESME_ROK => "ESME_ROK",
        ESME_RINVMSGLEN => "ESME_RINVMSGLEN",
        ESME_RINVCMDLEN => "ESME_RINVCMDLEN",
        ESME_RINVCMDID => "ESME_RINVCMDID",
        ESME_RINVBNDSTS => "ESME_RINVBNDSTS",
        ESME_RALYBND => "ESME_RALYBND",
        ESME_RINVPRTFLG => "ESME_RINVPRTFLG",
        ESME_RINVREGDLVFLG => "ESME_RINVREGDLVFLG",
        ESME_RSYSERR => "ESME_RSYSERR",
        ESME_RINVSRCADR => "ESME_RINVSRCADR",
        ESME_RINVDSTADR => "ESME_RINVDSTADR",
        ESME_RINVMSGID => "ESME_RINVMSGID",
        ESME_RBINDFAIL => "ESME_RBINDFAIL",
        ESME_RINVPASWD => "ESME_RINVPASWD",
        ESME_RINVSYSID => "ESME_RINVSYSID",
        ESME_RCANCELFAIL => "ESME_RCANCELFAIL",
        ESME_RREPLACEFAIL => "ESME_RREPLACEFAIL",
        ESME_RMSGQFUL => "ESME_RMSGQFUL",
        ESME_RINVSERTYP => "ESME_RINVSERTYP",
        ESME_RINVNUMDESTS => "ESME_RINVNUMDESTS",
        ESME_RINVDLNAME => "ESME_RINVDLNAME",
        ESME_RINVDESTFLAG => "ESME_RINVDESTFLAG",
        ESME_RINVSUBREP => "ESME_RINVSUBREP",
        ESME_RINVESMCLASS => "ESME_RINVESMCLASS",
        ESME_RCNTSUBDL => "ESME_RCNTSUBDL",
        ESME_RSUBMITFAIL => "ESME_RSUBMITFAIL",
        ESME_RINVSRCTON => "ESME_RINVSRCTON",
        ESME_RINVSRCNPI => "ESME_RINVSRCNPI",
        ESME_RINVDSTTON => "ESME_RINVDSTTON",
        ESME_RINVDSTNPI => "ESME_RINVDSTNPI",
        ESME_RINVSYSTYP => "ESME_RINVSYSTYP",
        ESME_RINVREPFLAG => "ESME_RINVREPFLAG",
        ESME_RINVNUMMSGS => "ESME_RINVNUMMSGS",
        ESME_RTHROTTLED => "ESME_RTHROTTLED",
        ESME_RINVSCHED => "ESME_RINVSCHED",
        ESME_RINVEXPIRY => "ESME_RINVEXPIRY",
        ESME_RINVDFTMSGID => "ESME_RINVDFTMSGID",
        ESME_RX_T_APPN => "ESME_RX_T_APPN",
        ESME_RX_P_APPN => "ESME_RX_P_APPN",
        ESME_RX_R_APPN => "ESME_RX_R_APPN",
        ESME_RQUERYFAIL => "ESME_RQUERYFAIL",
        ESME_RINVOPTPARSTREAM => "ESME_RINVOPTPARSTREAM",
        ESME_ROPTPARNOTALLWD => "ESME_ROPTPARNOTALLWD",
        ESME_RINVPARLEN => "ESME_RINVPARLEN",
        ESME_RMISSINGOPTPARAM => "ESME_RMISSINGOPTPARAM",
        ESME_RINVOPTPARAMVAL => "ESME_RINVOPTPARAMVAL",
        ESME_RDELIVERYFAILURE => "ESME_RDELIVERYFAILURE",
        ESME_RUNKNOWNERR => "ESME_RUNKNOWNERR",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_codes_kannel_retries_and_leaves_vendor_codes_unnamed() {
        assert_eq!(name(0x08), Some("ESME_RSYSERR"));
        assert_eq!(name(0x58), Some("ESME_RTHROTTLED"));
        assert_eq!(name(ESME_RINVTLVLEN), Some("ESME_RINVPARLEN"));
        assert_eq!(name(0x401), None);
        assert_eq!(name(0x09), None);
    }
}
