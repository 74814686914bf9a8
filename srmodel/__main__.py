import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet TensorFlow start-up logs

from srmodel.cli import main  # noqa: E402

sys.exit(main())
