// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {Ownable} from "./Ownable.sol";

/// Tunable parameters of the grid, owned by the deployer.
///
/// Used by this implementation: `minimumAmount` (the least credits a job may lock) and
/// `topUpSliceDurationMin` (minutes bought by one delegate top-up, and the remaining-time limit
/// below which a delegate may top up). The others are stored for ABI compatibility only:
/// `claimJobTimeout` (seconds), `billDurationDeltaMinute`, `cancellationFeeMinute`, `deepsquareCut`.
contract Constants is Ownable {
    uint64 public claimJobTimeout = 3600;
    uint64 public topUpSliceDurationMin = 60;
    uint256 public billDurationDeltaMinute;
    uint256 public cancellationFeeMinute;
    uint256 public deepsquareCut;
    uint256 public minimumAmount;

    constructor() Ownable(msg.sender) {}

    function setClaimJobTimeout(uint64 _value) external onlyOwner {
        claimJobTimeout = _value;
    }

    function setTopUpSliceDurationMin(uint64 _value) external onlyOwner {
        topUpSliceDurationMin = _value;
    }

    function setBillDurationDeltaMinute(uint256 _value) external onlyOwner {
        billDurationDeltaMinute = _value;
    }

    function setCancellationFeeMinute(uint256 _value) external onlyOwner {
        cancellationFeeMinute = _value;
    }

    function setDeepsquareCut(uint256 _value) external onlyOwner {
        deepsquareCut = _value;
    }

    function setMinimumAmount(uint256 _value) external onlyOwner {
        minimumAmount = _value;
    }
}
