// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Types.sol";
import {AccessControl} from "./AccessControl.sol";
import {IProviderManager} from "./Interfaces.sol";

/// The provider registry.
///
/// Lifecycle: a provider calls `register` -> its proposal waits for approval
/// (ProviderWaitingForApproval); the admin calls `approve` -> the proposal becomes the provider's
/// approved record (ProviderApproved) and the provider has "joined". `ban`/`unban` flip a flag
/// (ProviderBanChanged); `remove` forgets the provider entirely (ProviderRemoved).
///
/// Re-registration rule: registering exactly the approved values again changes nothing (and drops
/// any other proposal still waiting); registering different values files a new proposal that waits
/// for approval. Meanwhile the provider keeps its approved record: it stays joined (it may claim and
/// report jobs already assigned to it, billed at the approved prices) but it is not valid for
/// scheduling new jobs until the admin approves the new values.
///
/// `getProvider` returns the approved record, or an all-zero record (addr 0) for a provider that
/// never joined. Records are kept ABI-encoded (nested struct arrays cannot be copied to storage).
contract ProviderManager is IProviderManager, AccessControl {
    bytes32 public constant METASCHEDULER_ROLE = keccak256("METASCHEDULER_ROLE");

    /// abi.encode(ProviderHardware, ProviderPrices, Label[]); empty when absent.
    mapping(address provider => bytes) private _approved;
    mapping(address provider => bytes) private _proposal;
    mapping(address provider => bool) private _banned;
    mapping(address provider => uint64) private _jobCount;

    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
    }

    function register(
        ProviderHardware calldata _hardware,
        ProviderPrices calldata _prices,
        Label[] calldata _labels
    ) external {
        _checkHardware(_hardware);
        if (_banned[msg.sender]) revert Banned();
        bytes memory record = abi.encode(_hardware, _prices, _labels);
        bytes storage approved = _approved[msg.sender];
        if (approved.length != 0 && keccak256(approved) == keccak256(record)) {
            delete _proposal[msg.sender];
            return;
        }
        _proposal[msg.sender] = record;
        emit ProviderWaitingForApproval(msg.sender);
    }

    function approve(address _providerAddr) external onlyRole(DEFAULT_ADMIN_ROLE) {
        bytes storage proposal = _proposal[_providerAddr];
        if (proposal.length == 0) revert WaitingApprovalOnly();
        _approved[_providerAddr] = proposal;
        delete _proposal[_providerAddr];
        emit ProviderApproved(_providerAddr);
    }

    function ban(address _providerAddr) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _checkKnown(_providerAddr);
        if (_banned[_providerAddr]) revert AlreadyDone();
        _banned[_providerAddr] = true;
        emit ProviderBanChanged(_providerAddr, true);
    }

    function unban(address _providerAddr) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _checkKnown(_providerAddr);
        if (!_banned[_providerAddr]) revert AlreadyDone();
        _banned[_providerAddr] = false;
        emit ProviderBanChanged(_providerAddr, false);
    }

    function remove(address _providerAddr) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _checkKnown(_providerAddr);
        delete _approved[_providerAddr];
        delete _proposal[_providerAddr];
        delete _banned[_providerAddr];
        delete _jobCount[_providerAddr];
        emit ProviderRemoved(_providerAddr);
    }

    function incJobCount(address _providerAddr) external onlyRole(METASCHEDULER_ROLE) {
        _jobCount[_providerAddr]++;
    }

    function getProvider(address _providerAddr) external view returns (Provider memory) {
        return _decode(_providerAddr, _approved[_providerAddr]);
    }

    function getWaitingForApprovalProvider(address _providerAddr)
        external
        view
        returns (Provider memory)
    {
        return _decode(_providerAddr, _proposal[_providerAddr]);
    }

    function getProviderHardware(address _providerAddr)
        external
        view
        returns (ProviderHardware memory)
    {
        return _decode(_providerAddr, _approved[_providerAddr]).providerHardware;
    }

    function getProviderPrices(address _providerAddr)
        external
        view
        returns (ProviderPrices memory)
    {
        return _decode(_providerAddr, _approved[_providerAddr]).providerPrices;
    }

    function getLabels(address _providerAddr) external view returns (Label[] memory) {
        return _decode(_providerAddr, _approved[_providerAddr]).labels;
    }

    function getJobCount(address _providerAddr) external view returns (uint64) {
        return _jobCount[_providerAddr];
    }

    function isBanned(address _providerAddr) external view returns (bool) {
        return _banned[_providerAddr];
    }

    function isWaitingForApproval(address _providerAddr) external view returns (bool) {
        return _proposal[_providerAddr].length != 0;
    }

    /// Joined (approved once, not removed), no proposal waiting and not banned.
    function isValidForScheduling(address _providerAddr) external view returns (bool) {
        return _approved[_providerAddr].length != 0 && _proposal[_providerAddr].length == 0
            && !_banned[_providerAddr];
    }

    /// nodes > 0; one entry per node in every per-node array; some memory and some CPUs in total.
    function _checkHardware(ProviderHardware calldata hw) private pure {
        if (hw.nodes == 0) revert InvalidNodesCount();
        if (
            hw.gpusPerNode.length != hw.nodes || hw.cpusPerNode.length != hw.nodes
                || hw.memPerNode.length != hw.nodes
        ) revert ArrayLengthMismatch();
        uint256 totalMem = 0;
        uint256 totalCpus = 0;
        for (uint256 i = 0; i < hw.nodes; i++) {
            totalMem += hw.memPerNode[i];
            totalCpus += hw.cpusPerNode[i];
        }
        if (totalMem == 0) revert InvalidTotalMem();
        if (totalCpus == 0) revert InvalidTotalCpus();
    }

    function _checkKnown(address provider) private view {
        if (_approved[provider].length == 0 && _proposal[provider].length == 0) revert NoProvider();
    }

    function _decode(address provider, bytes storage record)
        private
        view
        returns (Provider memory p)
    {
        if (record.length == 0) return p;
        p.addr = provider;
        (p.providerHardware, p.providerPrices, p.labels) =
            abi.decode(record, (ProviderHardware, ProviderPrices, Label[]));
        p.isBanned = _banned[provider];
    }
}
