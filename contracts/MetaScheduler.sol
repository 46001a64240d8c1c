// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Types.sol";
import {AccessControl} from "./AccessControl.sol";
import {Constants} from "./Constants.sol";
import {IERC20, IJobRepository, IProviderJobQueues, IProviderManager} from "./Interfaces.sol";
import {JobRules} from "./Tools.sol";

/// The grid's entry point: customers request, cancel and top up jobs; the meta-scheduler oracle
/// (METASCHEDULER_ROLE) assigns them to providers; providers claim them and report their status.
///
/// Credits: a job's credits are locked here (`transferFrom` the customer) when it is requested or
/// topped up. When the job turns cold the provider is paid min(duration cost, locked) and the rest
/// goes back to the customer; a PANICKED or never-started cancelled job is refunded in full.
///
/// The per-provider queues may hold stale entries (a job cancelled or refused after it was queued):
/// claiming pops and skips them, so a claim can succeed without emitting any event.
contract MetaScheduler is AccessControl, IGridErrors {
    bytes32 public constant METASCHEDULER_ROLE = keccak256("METASCHEDULER_ROLE");

    IERC20 public immutable credit;
    Constants public immutable constants;
    IProviderManager public immutable providerManager;
    IProviderJobQueues public immutable providerJobQueues;
    IJobRepository public immutable jobs;

    bool public enableRequestNewJob = true;
    uint256 private _jobNonce;

    event ClaimJobEvent(
        address customerAddr,
        address providerAddr,
        bytes32 jobId,
        uint64 maxDurationMinute,
        JobDefinition jobDefinition
    );
    event ClaimNextCancellingJobEvent(address customerAddr, address providerAddr, bytes32 jobId);
    event ClaimNextTopUpJobEvent(bytes32 _jobId, address _providerAddr, uint64 maxDurationMinute);
    event NewJobRequestEvent(bytes32 _jobId, address _customerAddr);
    event JobRefusedEvent(bytes32 _jobId, address _providerAddr, address _customerAddr);
    event BilledTooMuchEvent(bytes32 _jobId, address _providerAddr, uint256 _billingAmount);

    constructor(
        IERC20 _credit,
        Constants _constants,
        IProviderManager _providerManager,
        IProviderJobQueues _providerJobQueues,
        IJobRepository _jobs
    ) {
        credit = _credit;
        constants = _constants;
        providerManager = _providerManager;
        providerJobQueues = _providerJobQueues;
        jobs = _jobs;
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
    }

    // ----------------------------------------------------------------------------------- customer

    /// Locks `_lockedCredits` (needs an allowance to this contract) and creates a PENDING job.
    function requestNewJob(
        JobDefinition calldata _definition,
        uint256 _lockedCredits,
        bytes32 _jobName,
        bool _delegateSpendingAuthority
    ) external returns (bytes32) {
        if (!enableRequestNewJob) revert NewJobRequestDisabled();
        if (!JobRules.isDefinitionValid(_definition)) revert InvalidJobDefinition();
        uint256 minimum = constants.minimumAmount();
        if (_lockedCredits < minimum) revert InsufficientFunds(_lockedCredits, minimum);
        _lockCredits(msg.sender, _lockedCredits);

        bytes32 jobId = keccak256(abi.encode(block.chainid, address(this), ++_jobNonce));
        Job memory job;
        job.jobId = jobId;
        job.status = JobStatus.PENDING;
        job.customerAddr = msg.sender;
        job.definition = _definition;
        job.cost.maxCost = _lockedCredits;
        job.cost.delegateSpendingAuthority = _delegateSpendingAuthority;
        job.time.submit = block.timestamp;
        job.time.blockNumberStateChange = block.number;
        job.jobName = _jobName;
        jobs.create(job);
        emit NewJobRequestEvent(jobId, msg.sender);
        return jobId;
    }

    /// PENDING/META_SCHEDULED: cancelled and refunded at once. SCHEDULED/RUNNING: marked
    /// hasCancelRequest and queued for the provider, who reports CANCELLED once SLURM stopped it.
    /// Callable by the customer, the meta-scheduler or the job's provider.
    function cancelJob(bytes32 _jobId) external {
        Job memory job = jobs.get(_jobId);
        bool allowed = msg.sender == job.customerAddr || hasRole(METASCHEDULER_ROLE, msg.sender)
            || (job.providerAddr != address(0) && msg.sender == job.providerAddr);
        if (!allowed) revert CustomerMetaSchedulerProviderOnly();
        if (!JobRules.isHot(job.status)) revert JobHotStatusOnly(job.status);
        if (job.status == JobStatus.PENDING || job.status == JobStatus.META_SCHEDULED) {
            _settle(job, JobStatus.CANCELLED, 0);
            return;
        }
        if (job.hasCancelRequest) return;
        jobs.setHasCancelRequest(_jobId, true);
        job.time.cancelRequestTimestamp = block.timestamp;
        jobs.setTime(_jobId, job.time);
        providerJobQueues.pushCancellingJob(job.providerAddr, _jobId);
    }

    /// Locks `_amount` more credits for a hot job; if it is SCHEDULED/RUNNING the provider is told
    /// through its top-up queue.
    function topUpJob(bytes32 _jobId, uint256 _amount) external {
        Job memory job = jobs.get(_jobId);
        if (msg.sender != job.customerAddr) revert CustomerOnly(msg.sender, job.customerAddr);
        _topUp(job, _amount);
    }

    /// Anyone may buy one slice (Constants.topUpSliceDurationMin minutes) with the customer's
    /// credits, if the customer allowed it and at most one slice of time remains.
    function topUpJobDelegate(bytes32 _jobId) external {
        Job memory job = jobs.get(_jobId);
        if (!job.cost.delegateSpendingAuthority) revert NoSpendingAuthority();
        if (!JobRules.isDelegateTopable(job.status)) revert RunningScheduledStatusOnly(job.status);
        ProviderPrices memory prices = providerManager.getProvider(job.providerAddr).providerPrices;
        uint64 slice = constants.topUpSliceDurationMin();
        uint64 remaining = JobRules.remainingTime(job, prices, block.timestamp);
        if (remaining > slice) revert RemainingTimeAboveLimit(remaining, slice);
        _topUp(job, JobRules.durationToCredit(job.definition, prices, slice));
    }

    function setDelegateSpendingAuthority(bytes32 _jobId, bool _delegateSpendingAuthority)
        external
    {
        Job memory job = jobs.get(_jobId);
        if (msg.sender != job.customerAddr) revert CustomerOnly(msg.sender, job.customerAddr);
        if (!JobRules.isHot(job.status)) revert JobHotStatusOnly(job.status);
        job.cost.delegateSpendingAuthority = _delegateSpendingAuthority;
        jobs.setCost(_jobId, job.cost);
    }

    // ----------------------------------------------------------------------------- meta-scheduler

    /// PENDING -> META_SCHEDULED on `_providerAddr`, which must be valid for scheduling.
    function metaSchedule(bytes32 _jobId, address _providerAddr)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        Job memory job = jobs.get(_jobId);
        JobRules.checkTransition(job.status, JobStatus.META_SCHEDULED);
        if (providerManager.isBanned(_providerAddr)) revert Banned();
        if (!providerManager.isValidForScheduling(_providerAddr)) revert ProviderNotJoined();
        jobs.setProviderAddr(_jobId, _providerAddr);
        jobs.setJobStatus(_jobId, JobStatus.META_SCHEDULED);
        providerJobQueues.pushClaimableJob(_providerAddr, _jobId);
        providerManager.incJobCount(_providerAddr);
    }

    /// A META_SCHEDULED job its provider did not claim goes back to PENDING.
    function timeoutJob(bytes32 _jobId) external onlyRole(METASCHEDULER_ROLE) {
        Job memory job = jobs.get(_jobId);
        if (job.status != JobStatus.META_SCHEDULED) {
            revert MetaScheduledScheduledStatusOnly(job.status);
        }
        jobs.setProviderAddr(_jobId, address(0));
        jobs.setJobStatus(_jobId, JobStatus.PENDING);
    }

    /// Ends a hot job as PANICKED: the customer is refunded, the provider gets nothing.
    function panicJob(bytes32 _jobId, string calldata _lastError)
        external
        onlyRole(METASCHEDULER_ROLE)
    {
        Job memory job = jobs.get(_jobId);
        if (!JobRules.isHot(job.status)) revert JobHotStatusOnly(job.status);
        JobRules.checkTransition(job.status, JobStatus.PANICKED);
        jobs.setLastError(_jobId, _lastError);
        _settle(job, JobStatus.PANICKED, 0);
    }

    // ---------------------------------------------------------------------------------- provider

    /// Pops the caller's claimable queue: the first job still META_SCHEDULED to the caller becomes
    /// SCHEDULED and ClaimJobEvent carries maxDurationMinute = locked credits / credits per minute
    /// at the caller's approved prices. NoJob() if the queue is empty.
    function claimNextJob() external {
        Provider memory provider = _joinedProvider(msg.sender);
        if (provider.isBanned) revert Banned();
        if (!providerJobQueues.hasNextClaimableJob(msg.sender)) revert NoJob();
        while (providerJobQueues.hasNextClaimableJob(msg.sender)) {
            bytes32 jobId = providerJobQueues.popNextClaimableJob(msg.sender);
            Job memory job = jobs.get(jobId);
            if (job.status != JobStatus.META_SCHEDULED || job.providerAddr != msg.sender) continue;
            uint64 maxDurationMinute = JobRules.creditToDuration(
                job.definition, provider.providerPrices, job.cost.maxCost
            );
            jobs.setJobStatus(jobId, JobStatus.SCHEDULED);
            emit ClaimJobEvent(
                job.customerAddr, msg.sender, jobId, maxDurationMinute, job.definition
            );
            return;
        }
    }

    /// Pops the caller's cancelling queue and emits ClaimNextCancellingJobEvent for the first job
    /// still SCHEDULED/RUNNING with a cancel request. NoJob() if the queue is empty.
    function claimNextCancellingJob() external {
        _joinedProvider(msg.sender);
        if (!providerJobQueues.hasCancellingJob(msg.sender)) revert NoJob();
        while (providerJobQueues.hasCancellingJob(msg.sender)) {
            bytes32 jobId = providerJobQueues.popNextCancellingJob(msg.sender);
            Job memory job = jobs.get(jobId);
            if (!_isConsuming(job) || !job.hasCancelRequest) continue;
            emit ClaimNextCancellingJobEvent(job.customerAddr, msg.sender, jobId);
            return;
        }
    }

    /// Pops the caller's top-up queue and emits ClaimNextTopUpJobEvent with the minutes bought by
    /// the credits topped up since the last claim (an increment). NoJob() if the queue is empty.
    function claimNextTopUpJob() external {
        Provider memory provider = _joinedProvider(msg.sender);
        if (!providerJobQueues.hasTopUpJob(msg.sender)) revert NoJob();
        while (providerJobQueues.hasTopUpJob(msg.sender)) {
            bytes32 jobId = providerJobQueues.popNextTopUpJob(msg.sender);
            Job memory job = jobs.get(jobId);
            if (!_isConsuming(job) || job.cost.pendingTopUp == 0) continue;
            uint64 increment = JobRules.creditToDuration(
                job.definition, provider.providerPrices, job.cost.pendingTopUp
            );
            job.cost.pendingTopUp = 0;
            jobs.setCost(jobId, job.cost);
            emit ClaimNextTopUpJobEvent(jobId, msg.sender, increment);
            return;
        }
    }

    /// The job's provider reports RUNNING or a final status. On a final status other than
    /// PANICKED the provider is billed `_jobDurationMinute` at its approved prices, capped at the
    /// locked credits (BilledTooMuchEvent when capped); the rest is refunded to the customer.
    function providerSetJobStatus(
        bytes32 _jobId,
        JobStatus _nextJobStatus,
        uint64 _jobDurationMinute,
        string calldata _lastError,
        int64 _exitCode
    ) external {
        Job memory job = jobs.get(_jobId);
        if (job.providerAddr != msg.sender) revert JobProviderOnly(msg.sender, job.providerAddr);
        if (!JobRules.isHot(job.status)) revert JobHotStatusOnly(job.status);
        JobRules.checkTransition(job.status, _nextJobStatus);
        if (_nextJobStatus == JobStatus.RUNNING) {
            job.time.start = block.timestamp;
            jobs.setTime(_jobId, job.time);
            jobs.setJobStatus(_jobId, JobStatus.RUNNING);
            return;
        }
        if (JobRules.isHot(_nextJobStatus)) {
            revert InvalidTransition(job.status, _nextJobStatus); // SCHEDULED is the claim's job
        }
        if (bytes(_lastError).length != 0) jobs.setLastError(_jobId, _lastError);
        jobs.setExitCode(_jobId, _exitCode);
        uint256 billed = 0;
        if (_nextJobStatus != JobStatus.PANICKED) {
            ProviderPrices memory prices = providerManager.getProvider(msg.sender).providerPrices;
            billed = JobRules.durationToCredit(job.definition, prices, _jobDurationMinute);
            if (billed > job.cost.maxCost) {
                emit BilledTooMuchEvent(_jobId, msg.sender, billed);
                billed = job.cost.maxCost;
            }
        }
        _settle(job, _nextJobStatus, billed);
    }

    /// The job's provider gives back a META_SCHEDULED/SCHEDULED job: it returns to PENDING
    /// (provider cleared, pending top-up forgotten) for the meta-scheduler to place again, or ends
    /// CANCELLED (refunded) if the customer had already asked to cancel it.
    function refuseJob(bytes32 _jobId) external {
        Job memory job = jobs.get(_jobId);
        if (job.providerAddr != msg.sender) revert JobProviderOnly(msg.sender, job.providerAddr);
        if (job.status != JobStatus.META_SCHEDULED && job.status != JobStatus.SCHEDULED) {
            revert MetaScheduledScheduledStatusOnly(job.status);
        }
        emit JobRefusedEvent(_jobId, msg.sender, job.customerAddr);
        if (job.hasCancelRequest) {
            _settle(job, JobStatus.CANCELLED, 0);
            return;
        }
        if (job.cost.pendingTopUp != 0) {
            job.cost.pendingTopUp = 0;
            jobs.setCost(_jobId, job.cost);
        }
        jobs.setProviderAddr(_jobId, address(0));
        jobs.setJobStatus(_jobId, JobStatus.PENDING);
    }

    // ------------------------------------------------------------------------------------- admin

    function setEnableRequestNewJob(bool _enable) external onlyRole(DEFAULT_ADMIN_ROLE) {
        enableRequestNewJob = _enable;
    }

    /// Sends `_amount` credits held by this contract to the admin (no check against locked ones).
    function withdrawAdmin(uint256 _amount) external onlyRole(DEFAULT_ADMIN_ROLE) {
        credit.transfer(msg.sender, _amount);
    }

    // ----------------------------------------------------------------------------------- helpers

    function _joinedProvider(address addr) private view returns (Provider memory provider) {
        provider = providerManager.getProvider(addr);
        if (provider.addr == address(0)) revert ProviderNotJoined();
    }

    /// Still in the provider's hands: SCHEDULED or RUNNING, and assigned to the caller.
    function _isConsuming(Job memory job) private view returns (bool) {
        return job.providerAddr == msg.sender
            && (job.status == JobStatus.SCHEDULED || job.status == JobStatus.RUNNING);
    }

    /// Takes `amount` credits from `from`; InsufficientFunds(min(allowance, balance), amount).
    function _lockCredits(address from, uint256 amount) private {
        uint256 allowed = credit.allowance(from, address(this));
        uint256 balance = credit.balanceOf(from);
        uint256 available = allowed < balance ? allowed : balance;
        if (available < amount) revert InsufficientFunds(available, amount);
        if (amount != 0) credit.transferFrom(from, address(this), amount);
    }

    function _topUp(Job memory job, uint256 amount) private {
        if (!JobRules.isHot(job.status)) revert JobHotStatusOnly(job.status);
        _lockCredits(job.customerAddr, amount);
        job.cost.maxCost += amount;
        bool queued = job.status == JobStatus.SCHEDULED || job.status == JobStatus.RUNNING;
        if (queued) job.cost.pendingTopUp += amount;
        jobs.setCost(job.jobId, job.cost);
        if (queued) providerJobQueues.pushTopUpJob(job.providerAddr, job.jobId);
    }

    /// Makes the job cold: pays `billed` to the provider, refunds the rest of the locked credits
    /// to the customer, records the final cost and the end (and panic) time.
    function _settle(Job memory job, JobStatus next, uint256 billed) private {
        job.cost.finalCost = billed;
        job.cost.pendingTopUp = 0;
        jobs.setCost(job.jobId, job.cost);
        job.time.end = block.timestamp;
        if (next == JobStatus.PANICKED) job.time.panicTimestamp = block.timestamp;
        jobs.setTime(job.jobId, job.time);
        jobs.setJobStatus(job.jobId, next);
        if (billed != 0) credit.transfer(job.providerAddr, billed);
        uint256 refund = job.cost.maxCost - billed;
        if (refund != 0) credit.transfer(job.customerAddr, refund);
    }
}
