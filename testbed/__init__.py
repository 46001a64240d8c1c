"""The real local grid (anvil, SLURM, sshd, the sbatch service) and the demo.

Importing the package silences the third-party warnings known to be harmless (asyncssh's use of
cryptography's deprecated DSA types), so the testbed's and the demo's output stays clean.
"""

from runtime.logs import quiet_known_warnings

quiet_known_warnings()
