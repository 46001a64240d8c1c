// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Types.sol";

interface IERC20 {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function totalSupply() external view returns (uint256);
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 value) external returns (bool);
    function allowance(address owner, address spender) external view returns (uint256);
    function approve(address spender, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// Job storage. Writers are restricted to the MetaScheduler contract (its METASCHEDULER_ROLE).
interface IJobRepository is IGridErrors {
    event JobTransitionEvent(bytes32 _jobId, JobStatus _from, JobStatus _to);
    event JobCreated(bytes32 _jobId);

    function create(Job calldata _job) external;
    function update(Job calldata _job) external;
    function setJobStatus(bytes32 _jobId, JobStatus _status) external;
    function setCost(bytes32 _jobId, JobCost calldata _cost) external;
    function setTime(bytes32 _jobId, JobTime calldata _time) external;
    function setDefinition(bytes32 _jobId, JobDefinition calldata _definition) external;
    function setCustomerAddr(bytes32 _jobId, address _customerAddr) external;
    function setProviderAddr(bytes32 _jobId, address _providerAddr) external;
    function setJobName(bytes32 _jobId, bytes32 _jobName) external;
    function setHasCancelRequest(bytes32 _jobId, bool _hasCancelRequest) external;
    function setLastError(bytes32 _jobId, string calldata _lastError) external;
    function setExitCode(bytes32 _jobId, int64 _exitCode) external;
    function get(bytes32 _jobId) external view returns (Job memory);
    function getByCustomer(address _customerAddr) external view returns (bytes32[] memory);
}

/// Per-provider FIFO queues of job ids: claimable, cancelling and top-up.
interface IProviderJobQueues is IGridErrors {
    function pushClaimableJob(address _providerAddr, bytes32 _jobId) external;
    function popNextClaimableJob(address _providerAddr) external returns (bytes32);
    function hasNextClaimableJob(address _providerAddr) external view returns (bool);
    function getClaimableJobQueueSize(address _providerAddr) external view returns (uint256);

    function pushCancellingJob(address _providerAddr, bytes32 _jobId) external;
    function popNextCancellingJob(address _providerAddr) external returns (bytes32);
    function hasCancellingJob(address _providerAddr) external view returns (bool);
    function getCancellingJobQueueSize(address _providerAddr) external view returns (uint256);

    function pushTopUpJob(address _providerAddr, bytes32 _jobId) external;
    function popNextTopUpJob(address _providerAddr) external returns (bytes32);
    function hasTopUpJob(address _providerAddr) external view returns (bool);
    function getTopUpJobQueueSize(address _providerAddr) external view returns (uint256);
}

/// The provider registry.
interface IProviderManager is IGridErrors {
    event ProviderWaitingForApproval(address _providerAddr);
    event ProviderApproved(address _providerAddr);
    event ProviderRemoved(address _providerAddr);
    event ProviderBanChanged(address _providerAddr, bool _isBanned);

    function register(
        ProviderHardware calldata _hardware,
        ProviderPrices calldata _prices,
        Label[] calldata _labels
    ) external;
    function approve(address _providerAddr) external;
    function ban(address _providerAddr) external;
    function unban(address _providerAddr) external;
    function remove(address _providerAddr) external;
    function incJobCount(address _providerAddr) external;

    function getProvider(address _providerAddr) external view returns (Provider memory);
    function getWaitingForApprovalProvider(address _providerAddr)
        external
        view
        returns (Provider memory);
    function getProviderHardware(address _providerAddr)
        external
        view
        returns (ProviderHardware memory);
    function getProviderPrices(address _providerAddr)
        external
        view
        returns (ProviderPrices memory);
    function getLabels(address _providerAddr) external view returns (Label[] memory);
    function getJobCount(address _providerAddr) external view returns (uint64);
    function isBanned(address _providerAddr) external view returns (bool);
    function isWaitingForApproval(address _providerAddr) external view returns (bool);
    function isValidForScheduling(address _providerAddr) external view returns (bool);
}
