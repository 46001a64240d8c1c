// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Types.sol";
import {AccessControl} from "./AccessControl.sol";
import {IProviderJobQueues} from "./Interfaces.sol";

/// A FIFO of job ids in storage (a minimal double-ended queue used from one end).
library JobQueue {
    struct Queue {
        uint128 begin;
        uint128 end;
        mapping(uint128 index => bytes32) items;
    }

    function pushBack(Queue storage q, bytes32 jobId) internal {
        q.items[q.end] = jobId;
        unchecked {
            q.end++;
        }
    }

    function popFront(Queue storage q) internal returns (bytes32 jobId) {
        if (q.begin == q.end) revert IGridErrors.Empty();
        jobId = q.items[q.begin];
        delete q.items[q.begin];
        unchecked {
            q.begin++;
        }
    }

    function peek(Queue storage q, uint256 index) internal view returns (bytes32) {
        if (index >= length(q)) revert IGridErrors.OutOfBounds();
        return q.items[uint128(q.begin + index)];
    }

    function length(Queue storage q) internal view returns (uint256) {
        return q.end - q.begin;
    }
}

/// Per-provider queues, pushed and popped by the MetaScheduler contract (METASCHEDULER_ROLE here):
/// claimable jobs (meta-scheduled to the provider), cancelling jobs (the customer asked to cancel a
/// scheduled/running job) and top-up jobs (the customer bought more minutes). Popping an empty
/// queue reverts NoJob().
contract ProviderJobQueues is IProviderJobQueues, AccessControl {
    using JobQueue for JobQueue.Queue;

    bytes32 public constant METASCHEDULER_ROLE = keccak256("METASCHEDULER_ROLE");

    mapping(address provider => JobQueue.Queue) private _claimable;
    mapping(address provider => JobQueue.Queue) private _cancelling;
    mapping(address provider => JobQueue.Queue) private _topUp;

    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
    }

    function pushClaimableJob(address _providerAddr, bytes32 _jobId)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        _claimable[_providerAddr].pushBack(_jobId);
    }

    function popNextClaimableJob(address _providerAddr)
        external
        onlyRole(METASCHEDULER_ROLE)
        returns (bytes32)
    {
        return _pop(_claimable[_providerAddr]);
    }

    function hasNextClaimableJob(address _providerAddr) external view returns (bool) {
        return _claimable[_providerAddr].length() > 0;
    }

    function getClaimableJobQueueSize(address _providerAddr) external view returns (uint256) {
        return _claimable[_providerAddr].length();
    }

    /// The job id at `_index` of the claimable queue (0 = next to be claimed); OutOfBounds().
    function getClaimableJob(address _providerAddr, uint256 _index)
        external
        view
        returns (bytes32)
    {
        return _claimable[_providerAddr].peek(_index);
    }

    function pushCancellingJob(address _providerAddr, bytes32 _jobId)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        _cancelling[_providerAddr].pushBack(_jobId);
    }

    function popNextCancellingJob(address _providerAddr)
        external
        onlyRole(METASCHEDULER_ROLE)
        returns (bytes32)
    {
        return _pop(_cancelling[_providerAddr]);
    }

    function hasCancellingJob(address _providerAddr) external view returns (bool) {
        return _cancelling[_providerAddr].length() > 0;
    }

    function getCancellingJobQueueSize(address _providerAddr) external view returns (uint256) {
        return _cancelling[_providerAddr].length();
    }

    function pushTopUpJob(address _providerAddr, bytes32 _jobId)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        _topUp[_providerAddr].pushBack(_jobId);
    }

    function popNextTopUpJob(address _providerAddr)
        external
        onlyRole(METASCHEDULER_ROLE)
        returns (bytes32)
    {
        return _pop(_topUp[_providerAddr]);
    }

    function hasTopUpJob(address _providerAddr) external view returns (bool) {
        return _topUp[_providerAddr].length() > 0;
    }

    function getTopUpJobQueueSize(address _providerAddr) external view returns (uint256) {
        return _topUp[_providerAddr].length();
    }

    function _pop(JobQueue.Queue storage q) private returns (bytes32) {
        if (q.length() == 0) revert NoJob();
        return q.popFront();
    }
}
