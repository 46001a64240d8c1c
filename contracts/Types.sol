// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

// Shared vocabulary of the grid: the job and provider records, their enums and every custom error.
// Field order is the ABI tuple order; renaming a field is harmless, reordering one breaks the wire.

/// Where a job stands. Values 0..3 are "hot" (the job can still move), 4..8 are "cold" (final).
enum JobStatus {
    PENDING, // 0: requested by a customer, waiting for the meta-scheduler
    META_SCHEDULED, // 1: assigned to a provider, sitting in its claimable queue
    SCHEDULED, // 2: claimed by the provider, queued in its SLURM
    RUNNING, // 3: executing
    CANCELLED, // 4
    FINISHED, // 5
    FAILED, // 6
    OUT_OF_CREDITS, // 7: hit the time limit bought by the locked credits
    PANICKED // 8: the provider lost the job; the customer pays nothing
}

/// Where the sbatch script lives. The member names are not public; every client sends 0.
enum StorageType {
    SBATCH_SERVICE,
    IPFS
}

struct Label {
    string key;
    string value;
}

/// `op` is an ASCII comparison operator, NUL-padded: "=\0", "==", "in", ">\0", "<\0", ">=", "<=", "!=".
struct Affinity {
    Label label;
    bytes2 op;
}

struct JobDefinition {
    uint64 gpus; // for the whole job
    uint64 memPerCpu; // MB
    uint64 cpusPerTask;
    uint64 ntasks;
    string batchLocationHash; // sbatch-service storage key
    StorageType storageType;
    Label[] uses; // equality constraints on provider labels
    Affinity[] affinity;
}

struct JobCost {
    uint256 maxCost; // credits locked in the MetaScheduler for this job (wei of credit)
    uint256 finalCost; // credits paid to the provider once the job is cold
    uint256 pendingTopUp; // credits topped up but not yet claimed by the provider
    bool delegateSpendingAuthority;
}

struct JobTime {
    uint256 submit;
    uint256 start;
    uint256 end;
    uint256 cancelRequestTimestamp;
    uint256 blockNumberStateChange;
    uint256 panicTimestamp;
}

struct Job {
    bytes32 jobId;
    JobStatus status;
    address customerAddr;
    address providerAddr;
    JobDefinition definition;
    JobCost cost;
    JobTime time;
    bytes32 jobName;
    bool hasCancelRequest;
    string lastError;
    int64 exitCode;
}

struct ProviderHardware {
    uint64 nodes;
    uint64[] gpusPerNode;
    uint64[] cpusPerNode;
    uint64[] memPerNode; // MB
}

/// Prices in wei of credit per GPU-minute, CPU-minute and MB-minute.
struct ProviderPrices {
    uint256 gpuPricePerMin;
    uint256 cpuPricePerMin;
    uint256 memPricePerMin;
}

struct Provider {
    address addr;
    ProviderHardware providerHardware;
    ProviderPrices providerPrices;
    Label[] labels;
    bool isBanned;
}

/// Every custom error of the grid, so that any one of our ABIs can decode any revert.
interface IGridErrors {
    error InsufficientFunds(uint256 available, uint256 required);
    error InvalidJobDefinition();
    error JobHotStatusOnly(JobStatus current);
    error InvalidTransition(JobStatus from, JobStatus to);
    error SameStatusError();
    error RunningScheduledStatusOnly(JobStatus current);
    error MetaScheduledScheduledStatusOnly(JobStatus current);
    error RunningColdStatusOnly(JobStatus current);
    error CustomerOnly(address current, address expected);
    error JobProviderOnly(address current, address expected);
    error CustomerMetaSchedulerProviderOnly();
    error ProviderNotJoined();
    error RemainingTimeAboveLimit(uint256 remaining, uint256 limit);
    error NoSpendingAuthority();
    error NewJobRequestDisabled();
    error InvalidJob();
    error NoJob();
    error InvalidNodesCount();
    error ArrayLengthMismatch();
    error InvalidTotalMem();
    error InvalidTotalCpus();
    error NoProvider();
    error WaitingApprovalOnly();
    error Banned();
    error AlreadyDone();
    error Empty();
    error OutOfBounds();
}
