// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

/// One storage word per (unit, account), so that a payment or a settlement entry reads and
/// writes exactly one slot per party (a cold slot costs 2,100 gas to read, 2,900 to rewrite):
///   bits   0..95   balance    int96, two's complement (±3.9e28 base units)
///   bits  96..135  touchedAt  uint40, unix seconds of the last demurrage computation
///   bits 136..183  dust       uint48, demurrage remainder in 1/Demurrage.DENOMINATOR units
///   bits 184..215  nonce      uint32, next payment-intent nonce of the account in this unit
///   bits 216..247  owed       uint32, demurrage charged and not yet collected into the fund
///   bits 248..255  flags      FROZEN, CUSTOM_LIMITS
/// A payment leaves the demurrage it charges in the payer's and payee's own words ("owed")
/// rather than adding it to the unit's word, which would be a third slot written per
/// payment; settlement and `collect` sweep it into the fund.
library AccountWord {
    uint8 internal constant FROZEN = 1;
    uint8 internal constant CUSTOM_LIMITS = 2;

    error BalanceOutOfRange(int256 balance);

    function balance(uint256 w) internal pure returns (int256) {
        return int256(int96(uint96(w)));
    }

    function touchedAt(uint256 w) internal pure returns (uint256) {
        return uint40(w >> 96);
    }

    function dust(uint256 w) internal pure returns (uint256) {
        return uint48(w >> 136);
    }

    function nonce(uint256 w) internal pure returns (uint256) {
        return uint32(w >> 184);
    }

    function owed(uint256 w) internal pure returns (uint256) {
        return uint32(w >> 216);
    }

    function flags(uint256 w) internal pure returns (uint8) {
        return uint8(w >> 248);
    }

    function withFlags(uint256 w, uint8 flags_) internal pure returns (uint256) {
        return (w & ~(uint256(0xff) << 248)) | (uint256(flags_) << 248);
    }
}

/// One storage word per unit, read by every movement:
///   bits   0..87   pending    uint88, demurrage collected and not yet swept into the fund's balance
///   bits  88..119  rate       uint32, demurrage in parts per billion per day
///   bits 120..183  floor      int64, default floor (credit limit) of an account
///   bits 184..247  ceiling    uint64, default ceiling of an account
///   bits 248..255  flags      EXISTS, PAUSED, METERED
library UnitWord {
    uint8 internal constant EXISTS = 1;
    uint8 internal constant PAUSED = 2;
    uint8 internal constant METERED = 4;

    error PendingOverflow();

    function pending(uint256 w) internal pure returns (uint256) {
        return uint88(w);
    }

    function rate(uint256 w) internal pure returns (uint256) {
        return uint32(w >> 88);
    }

    function floor(uint256 w) internal pure returns (int256) {
        return int64(uint64(w >> 120));
    }

    function ceiling(uint256 w) internal pure returns (int256) {
        return int256(uint256(uint64(w >> 184)));
    }

    function flags(uint256 w) internal pure returns (uint8) {
        return uint8(w >> 248);
    }

    function pack(uint256 pending_, uint32 rate_, int64 floor_, uint64 ceiling_, uint8 flags_)
        internal
        pure
        returns (uint256)
    {
        if (pending_ > type(uint88).max) revert PendingOverflow();
        return pending_ | (uint256(rate_) << 88) | (uint256(uint64(floor_)) << 120)
            | (uint256(ceiling_) << 184) | (uint256(flags_) << 248);
    }

    function withPending(uint256 w, uint256 pending_) internal pure returns (uint256) {
        if (pending_ > type(uint88).max) revert PendingOverflow();
        return (w & ~uint256(type(uint88).max)) | pending_;
    }

    function withFlags(uint256 w, uint8 flags_) internal pure returns (uint256) {
        return (w & ~(uint256(0xff) << 248)) | (uint256(flags_) << 248);
    }
}

/// Lazy demurrage: a simple rate on a positive balance for the time since the account was
/// last touched. The charge rounds down and the remainder ("dust", always below one base
/// unit) is carried in the account word, so an account touched every block pays exactly
/// what one touched once a year would for the same constant balance: touching more often
/// neither escapes nor adds to the charge.
library Demurrage {
    /// rate (ppb per day) x seconds / DENOMINATOR is the fraction of the balance charged.
    uint256 internal constant DENOMINATOR = 1e9 * 86400;

    function charge(uint256 bal, uint256 ratePpbPerDay, uint256 elapsed, uint256 dust)
        internal
        pure
        returns (uint256 amount, uint256 newDust)
    {
        // bal < 2**95, rate < 2**32, elapsed < 2**40: the product fits in 167 bits.
        uint256 num = bal * ratePpbPerDay * elapsed + dust;
        amount = num / DENOMINATOR;
        newDust = num % DENOMINATOR;
        if (amount >= bal) {
            // A balance never goes negative through demurrage; what is left is forgiven.
            amount = bal;
            newDust = 0;
        }
    }
}
