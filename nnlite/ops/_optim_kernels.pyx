# placeholder: replaced by the Cython optimizer kernels
def _placeholder():
    return None
