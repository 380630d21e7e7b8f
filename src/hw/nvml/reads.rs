//! Turns each NVML answer into a model field: a value, "not supported" (no
//! value, no complaint), or a failure recorded as a `ReadProblem` on the GPU.

use nvml_wrapper::error::NvmlError;

use crate::model::ReadProblem;

/// `NVML_ERROR_ARGUMENT_VERSION_MISMATCH`: the driver does not know the struct
/// version we passed. The wrapper predates it and reports it as an unexpected value.
pub const ARGUMENT_VERSION_MISMATCH: u32 = 25;

/// Whether an error means "this GPU or driver does not have the feature", which
/// is an answer, not a failure. A function missing from an older driver's
/// library counts as not supported: the driver predates the feature.
pub fn is_unsupported(error: &NvmlError) -> bool {
    matches!(error, NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_) | NvmlError::FunctionNotFound)
}

/// One line for a `ReadProblem` message. The wrapper's own text is fine except
/// for return codes it does not know, which it prints as bare numbers.
pub fn describe(error: &NvmlError) -> String {
    match error {
        NvmlError::UnexpectedVariant(ARGUMENT_VERSION_MISMATCH) => {
            "the driver does not accept this struct version (NVML_ERROR_ARGUMENT_VERSION_MISMATCH)".to_string()
        }
        NvmlError::UnexpectedVariant(code) => format!("unknown nvml return code {code}"),
        other => other.to_string(),
    }
}

/// Collects the problems met while reading one GPU.
#[derive(Debug)]
pub struct Reads {
    component: String,
    problems: Vec<ReadProblem>,
}

impl Reads {
    /// For the GPU with this NVML index (`gpu3`).
    pub fn for_gpu(index: u32) -> Self {
        Reads { component: format!("gpu{index}"), problems: Vec::new() }
    }

    /// Keeps a value; drops "not supported" silently; records anything else
    /// against `call` (the NVML function name) and yields `None`.
    pub fn take<T>(&mut self, call: &str, result: Result<T, NvmlError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) if is_unsupported(&error) => None,
            Err(error) => {
                self.problem(call, describe(&error));
                None
            }
        }
    }

    /// Records a problem that is not an NVML error (a value NVML returned that
    /// makes no sense, such as an unparseable bus id).
    pub fn problem(&mut self, call: &str, message: impl Into<String>) {
        self.problems.push(ReadProblem::new("nvml", call, message).on(self.component.clone()));
    }

    pub fn into_problems(self) -> Vec<ReadProblem> {
        self.problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_pass_through_and_unsupported_is_silent() {
        let mut reads = Reads::for_gpu(2);
        assert_eq!(reads.take("nvmlDeviceGetSerial", Ok(7)), Some(7));
        assert_eq!(reads.take::<u32>("nvmlDeviceGetSerial", Err(NvmlError::NotSupported)), None);
        let missing = NvmlError::FailedToLoadSymbol("undefined symbol: nvmlDeviceGetPlatformInfo".into());
        assert_eq!(reads.take::<u32>("nvmlDeviceGetPlatformInfo", Err(missing)), None);
        assert!(reads.into_problems().is_empty());
    }

    #[test]
    fn failures_become_problems_naming_call_and_gpu() {
        let mut reads = Reads::for_gpu(5);
        assert_eq!(reads.take::<u32>("nvmlDeviceGetSerial", Err(NvmlError::GpuLost)), None);
        let problems = reads.into_problems();
        assert_eq!(problems.len(), 1);
        let problem = &problems[0];
        assert_eq!(problem.source, "nvml");
        assert_eq!(problem.path, "nvmlDeviceGetSerial");
        assert_eq!(problem.component.as_deref(), Some("gpu5"));
        assert!(problem.message.contains("fell off the bus"), "{}", problem.message);
    }

    #[test]
    fn version_mismatch_is_spelled_out() {
        let text = describe(&NvmlError::UnexpectedVariant(ARGUMENT_VERSION_MISMATCH));
        assert!(text.contains("NVML_ERROR_ARGUMENT_VERSION_MISMATCH"), "{text}");
        assert_eq!(describe(&NvmlError::UnexpectedVariant(99)), "unknown nvml return code 99");
    }
}
