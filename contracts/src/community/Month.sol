// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.28;

/// Calendar months (UTC) for monthly caps and allowances.
library Month {
    /// The month of unix time `ts` as year * 12 + (month - 1), by Howard Hinnant's
    /// civil_from_days; the Python side is `datetime` in UTC.
    function index(uint256 ts) internal pure returns (uint32) {
        unchecked {
            uint256 z = ts / 86400 + 719468;
            uint256 era = z / 146097;
            uint256 doe = z - era * 146097;
            uint256 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
            uint256 y = yoe + era * 400;
            uint256 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            uint256 mp = (5 * doy + 2) / 153;
            uint256 m = mp < 10 ? mp + 3 : mp - 9;
            if (m <= 2) ++y;
            return uint32(y * 12 + m - 1);
        }
    }
}
