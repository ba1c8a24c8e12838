//! Kernel networking: rtnetlink client and namespace helpers.

pub mod netns;
pub mod rtnl;
