// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Types.sol";
import {AccessControl} from "./AccessControl.sol";
import {IJobRepository} from "./Interfaces.sol";

/// Job storage, written only by the MetaScheduler contract (granted METASCHEDULER_ROLE here).
/// Emits JobCreated on create and JobTransitionEvent on every status change.
///
/// The definition is kept ABI-encoded: it holds nested arrays of structs, which Solidity cannot
/// copy into storage member by member, and it never changes after creation anyway.
contract JobRepository is IJobRepository, AccessControl {
    bytes32 public constant METASCHEDULER_ROLE = keccak256("METASCHEDULER_ROLE");

    struct StoredJob {
        bool exists;
        JobStatus status;
        address customerAddr;
        address providerAddr;
        bytes definition; // abi.encode(JobDefinition)
        JobCost cost;
        JobTime time;
        bytes32 jobName;
        bool hasCancelRequest;
        string lastError;
        int64 exitCode;
    }

    mapping(bytes32 jobId => StoredJob) private _jobs;
    mapping(address customer => bytes32[]) private _byCustomer;

    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
    }

    function create(Job calldata _job) external onlyRole(METASCHEDULER_ROLE) {
        if (_job.jobId == bytes32(0) || _jobs[_job.jobId].exists) revert InvalidJob();
        _store(_job);
        _byCustomer[_job.customerAddr].push(_job.jobId);
        emit JobCreated(_job.jobId);
    }

    function update(Job calldata _job) external onlyRole(METASCHEDULER_ROLE) {
        JobStatus from = _existing(_job.jobId).status;
        _store(_job);
        if (from != _job.status) emit JobTransitionEvent(_job.jobId, from, _job.status);
    }

    /// Records the new status (no rule check: the MetaScheduler checks) and the block number.
    function setJobStatus(bytes32 _jobId, JobStatus _status)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        StoredJob storage job = _existing(_jobId);
        JobStatus from = job.status;
        job.status = _status;
        job.time.blockNumberStateChange = block.number;
        emit JobTransitionEvent(_jobId, from, _status);
    }

    function setCost(bytes32 _jobId, JobCost calldata _cost) external onlyRole(METASCHEDULER_ROLE) {
        _existing(_jobId).cost = _cost;
    }

    function setTime(bytes32 _jobId, JobTime calldata _time) external onlyRole(METASCHEDULER_ROLE) {
        _existing(_jobId).time = _time;
    }

    function setDefinition(bytes32 _jobId, JobDefinition calldata _definition)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        _existing(_jobId).definition = abi.encode(_definition);
    }

    function setCustomerAddr(bytes32 _jobId, address _customerAddr)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        _existing(_jobId).customerAddr = _customerAddr;
        _byCustomer[_customerAddr].push(_jobId);
    }

    function setProviderAddr(bytes32 _jobId, address _providerAddr)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        _existing(_jobId).providerAddr = _providerAddr;
    }

    function setJobName(bytes32 _jobId, bytes32 _jobName) external onlyRole(METASCHEDULER_ROLE) {
        _existing(_jobId).jobName = _jobName;
    }

    function setHasCancelRequest(bytes32 _jobId, bool _hasCancelRequest)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        _existing(_jobId).hasCancelRequest = _hasCancelRequest;
    }

    function setLastError(bytes32 _jobId, string calldata _lastError)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        _existing(_jobId).lastError = _lastError;
    }

    function setExitCode(bytes32 _jobId, int64 _exitCode) external onlyRole(METASCHEDULER_ROLE) {
        _existing(_jobId).exitCode = _exitCode;
    }

    /// The job, or InvalidJob() if no job has this id.
    function get(bytes32 _jobId) external view returns (Job memory job) {
        StoredJob storage stored = _jobs[_jobId];
        if (!stored.exists) revert InvalidJob();
        job.jobId = _jobId;
        job.status = stored.status;
        job.customerAddr = stored.customerAddr;
        job.providerAddr = stored.providerAddr;
        job.definition = abi.decode(stored.definition, (JobDefinition));
        job.cost = stored.cost;
        job.time = stored.time;
        job.jobName = stored.jobName;
        job.hasCancelRequest = stored.hasCancelRequest;
        job.lastError = stored.lastError;
        job.exitCode = stored.exitCode;
    }

    function getByCustomer(address _customerAddr) external view returns (bytes32[] memory) {
        return _byCustomer[_customerAddr];
    }

    function _existing(bytes32 jobId) private view returns (StoredJob storage job) {
        job = _jobs[jobId];
        if (!job.exists) revert InvalidJob();
    }

    function _store(Job calldata job) private {
        StoredJob storage stored = _jobs[job.jobId];
        stored.exists = true;
        stored.status = job.status;
        stored.customerAddr = job.customerAddr;
        stored.providerAddr = job.providerAddr;
        stored.definition = abi.encode(job.definition);
        stored.cost = job.cost;
        stored.time = job.time;
        stored.jobName = job.jobName;
        stored.hasCancelRequest = job.hasCancelRequest;
        stored.lastError = job.lastError;
        stored.exitCode = job.exitCode;
    }
}
