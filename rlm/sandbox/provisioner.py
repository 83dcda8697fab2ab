"""The kernel provisioners registered under `jupyter_client.kernel_provisioners`.

pyproject's entry points name this module, so Jupyter tools load `ContainerProvisioner`
(the kernel in a locked-down container) and `LocalProvisioner` (a plain subprocess, for
development only) from here. Each lives in its own module; `default_image` is re-exported
for the commands that name the image.
"""

from rlm.sandbox.container_launch import default_image
from rlm.sandbox.container_provisioner import ContainerProvisioner
from rlm.sandbox.local_provisioner import LocalProvisioner

__all__ = ["ContainerProvisioner", "LocalProvisioner", "default_image"]
