// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Types.sol";

/// The rules of the grid as internal functions: inlined into the contracts that use them, so no
/// library has to be deployed or linked. `Tools` below exposes the same rules under the public ABI.
library JobRules {
    /// Hot = the job can still change: PENDING, META_SCHEDULED, SCHEDULED, RUNNING.
    function isHot(JobStatus s) internal pure returns (bool) {
        return s <= JobStatus.RUNNING;
    }

    /// Allowed edges of the job state machine:
    ///   PENDING        -> META_SCHEDULED (metaSchedule), CANCELLED (cancelJob)
    ///   META_SCHEDULED -> SCHEDULED (claimNextJob), CANCELLED, PANICKED
    ///   SCHEDULED      -> RUNNING, CANCELLED, FAILED, PANICKED
    ///   RUNNING        -> FINISHED, FAILED, CANCELLED, OUT_OF_CREDITS, PANICKED
    /// Cold statuses never move. refuseJob and timeoutJob send a job back to PENDING outside this
    /// table (they undo an assignment rather than advance the job).
    function isAllowed(JobStatus from, JobStatus to) internal pure returns (bool) {
        if (from == JobStatus.PENDING) {
            return to == JobStatus.META_SCHEDULED || to == JobStatus.CANCELLED;
        }
        if (from == JobStatus.META_SCHEDULED) {
            return to == JobStatus.SCHEDULED || to == JobStatus.CANCELLED
                || to == JobStatus.PANICKED;
        }
        if (from == JobStatus.SCHEDULED) {
            return to == JobStatus.RUNNING || to == JobStatus.CANCELLED || to == JobStatus.FAILED
                || to == JobStatus.PANICKED;
        }
        if (from == JobStatus.RUNNING) {
            return to == JobStatus.FINISHED || to == JobStatus.FAILED || to == JobStatus.CANCELLED
                || to == JobStatus.OUT_OF_CREDITS || to == JobStatus.PANICKED;
        }
        return false; // cold statuses never move
    }

    /// Reverts SameStatusError or InvalidTransition(from, to) unless `from -> to` is allowed.
    function checkTransition(JobStatus from, JobStatus to) internal pure {
        if (from == to) revert IGridErrors.SameStatusError();
        if (!isAllowed(from, to)) revert IGridErrors.InvalidTransition(from, to);
    }

    /// Credits one minute of this job costs at these prices:
    /// ntasks * (cpuPrice * cpusPerTask + memPrice * memPerCpu * cpusPerTask) + gpuPrice * gpus.
    function creditsPerMinute(JobDefinition memory d, ProviderPrices memory p)
        internal
        pure
        returns (uint256)
    {
        uint256 perTask = p.cpuPricePerMin * d.cpusPerTask
            + p.memPricePerMin * d.memPerCpu * d.cpusPerTask;
        return d.ntasks * perTask + p.gpuPricePerMin * d.gpus;
    }

    /// Whole minutes `amount` credits buy; saturates at 2^64-1 (also when the job is free).
    function creditToDuration(JobDefinition memory d, ProviderPrices memory p, uint256 amount)
        internal
        pure
        returns (uint64)
    {
        uint256 rate = creditsPerMinute(d, p);
        if (rate == 0) return type(uint64).max;
        uint256 minutes_ = amount / rate;
        return minutes_ > type(uint64).max ? type(uint64).max : uint64(minutes_);
    }

    function durationToCredit(JobDefinition memory d, ProviderPrices memory p, uint64 duration)
        internal
        pure
        returns (uint256)
    {
        return creditsPerMinute(d, p) * duration;
    }

    /// Minutes left: everything the locked credits buy, minus the minutes run so far if RUNNING.
    function remainingTime(Job memory job, ProviderPrices memory p, uint256 nowSeconds)
        internal
        pure
        returns (uint64)
    {
        if (!isHot(job.status)) return 0;
        uint64 total = creditToDuration(job.definition, p, job.cost.maxCost);
        if (job.status != JobStatus.RUNNING || job.time.start == 0) return total;
        uint256 elapsed = (nowSeconds - job.time.start) / 60;
        return elapsed >= total ? 0 : total - uint64(elapsed);
    }

    /// A delegate may top up only a job that consumes time: SCHEDULED or RUNNING.
    function isDelegateTopable(JobStatus s) internal pure returns (bool) {
        return s == JobStatus.SCHEDULED || s == JobStatus.RUNNING;
    }

    /// A job needs resources and a script: ntasks, cpusPerTask, memPerCpu > 0, a non-empty
    /// batchLocationHash, non-empty label keys and known affinity operators.
    function isDefinitionValid(JobDefinition memory d) internal pure returns (bool) {
        if (d.ntasks == 0 || d.cpusPerTask == 0 || d.memPerCpu == 0) return false;
        if (bytes(d.batchLocationHash).length == 0) return false;
        for (uint256 i = 0; i < d.uses.length; i++) {
            if (bytes(d.uses[i].key).length == 0) return false;
        }
        for (uint256 i = 0; i < d.affinity.length; i++) {
            if (bytes(d.affinity[i].label.key).length == 0) return false;
            if (!isKnownOperator(d.affinity[i].op)) return false;
        }
        return true;
    }

    function isKnownOperator(bytes2 op) internal pure returns (bool) {
        return op == bytes2("=") || op == bytes2("==") || op == bytes2("in") || op == bytes2(">")
            || op == bytes2("<") || op == bytes2(">=") || op == bytes2("<=") || op == bytes2("!=");
    }
}

/// The public face of the rules, with the grid's ABI (selectors identical to the reference).
library Tools {
    function checkNewJobStatus(JobStatus _currentJobStatus, JobStatus _nextJobStatus)
        public
        pure
    {
        JobRules.checkTransition(_currentJobStatus, _nextJobStatus);
    }

    function convertCreditToDuration(
        JobDefinition memory _jobDefinition,
        ProviderPrices memory _providerPrices,
        uint256 _amountLocked
    ) public pure returns (uint64) {
        return JobRules.creditToDuration(_jobDefinition, _providerPrices, _amountLocked);
    }

    function convertDurationToCredit(
        JobDefinition memory _jobDefinition,
        ProviderPrices memory _providerPrices,
        uint64 _durationMinute
    ) public pure returns (uint256) {
        return JobRules.durationToCredit(_jobDefinition, _providerPrices, _durationMinute);
    }

    function getRemainingTime(Job memory _job, ProviderPrices memory _providerPrices)
        public
        view
        returns (uint64)
    {
        return JobRules.remainingTime(_job, _providerPrices, block.timestamp);
    }

    function isJobHot(JobStatus _status) public pure returns (bool) {
        return JobRules.isHot(_status);
    }

    function isJobCold(JobStatus _status) public pure returns (bool) {
        return !JobRules.isHot(_status);
    }

    function isDelegateTopable(JobStatus _status) public pure returns (bool) {
        return JobRules.isDelegateTopable(_status);
    }

    function isJobDefinitionValid(JobDefinition memory _jobDefinition)
        public
        pure
        returns (bool)
    {
        return JobRules.isDefinitionValid(_jobDefinition);
    }
}
