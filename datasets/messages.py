"""The English source text of every refusal a person may see; French in ``locale/fr``."""

from datasets.access import AccessRefused, Refusal
from tre_core.i18n import translate

REFUSALS: dict[Refusal, str] = {
    Refusal.NOT_A_PROJECT: (
        "There is no project called “{project}”. Start a workspace from your home page, "
        "where your projects are listed."
    ),
    Refusal.NOT_A_MEMBER: (
        "You are not a member of project {project}. Ask its principal investigator "
        "({investigator}) to add you, through a data steward."
    ),
    Refusal.PROJECT_NOT_STARTABLE: (
        "Project {project} is {status}: its workspaces cannot start. Ask a data steward."
    ),
    Refusal.PROJECT_NOT_STARTED: (
        "Project {project} starts on {date}; its workspaces can start from that day."
    ),
    Refusal.PROJECT_ENDED: (
        "Project {project} ended on {date}. Ask a data steward to extend it if your work goes on."
    ),
    Refusal.DATASET_INTEGRITY: (
        "Dataset {dataset} failed its integrity check ({problem}), so it is not mounted and the workspace "
        "does not start. Tell the data stewards ({stewards}): they restore it or register its new version."
    ),
    Refusal.DATASET_SUSPENDED: (
        "Dataset {dataset} {version} is suspended: a check found its files changed since registration, so it "
        "is not mounted and the workspace does not start. The data stewards ({stewards}) have been told; "
        "ask them when it will be restored or which version to use instead."
    ),
    Refusal.UNSAFE_FOLDER: (
        "The folder {folder} of project {project} has been replaced by a link or a file, so the "
        "workspace does not start. Delete {folder} from another running workspace of the project, "
        "or ask the platform's administrators to."
    ),
    Refusal.STORAGE_UNAVAILABLE: (
        "The storage of project {project} could not be prepared ({problem}), so the workspace does not start."
    ),
    Refusal.FIREWALL_MISSING: (
        "The network protection around workspaces is not in place on this host, so no workspace "
        "starts. Tell the platform's administrators: they restore it with “tre firewall install”."
    ),
    Refusal.NO_DATASET_IN_FORCE: (
        "Project {project} has no dataset grant in force today. Ask a data steward to renew its grants."
    ),
    Refusal.GRANTS_NOT_STARTED: (
        "The datasets of project {project} are granted from {date}; its workspaces can start from that day."
    ),
    Refusal.EXTRACT_FAILED: (
        "The extract of dataset {dataset} for project {project} could not be built ({problem}), so the "
        "workspace does not start. Ask a data steward ({stewards}) to look into it and build it again."
    ),
    Refusal.NO_IMAGE: (
        "No analysis image is registered for project {project}, so its workspace cannot start. An admin "
        "must run `tre images build {image}` (or `tre images register {image}`)."
    ),
    Refusal.IMAGE_RETIRED: (
        "Project {project} is pinned to image {image}, which is retired: no new workspace starts from it. "
        "Ask an admin to pin the project to an active image."
    ),
    Refusal.IMAGE_MISSING: (
        "The image of project {project} ({image}) is no longer on this machine, so the workspace does not "
        "start. Ask an admin to rebuild it and pin the project again."
    ),
    Refusal.NO_NODE_FOR_DATASETS: (
        "No machine of the platform holds the datasets of project {project} ({datasets}) at the versions "
        "granted, so the workspace does not start. Tell the platform's administrators: a data steward "
        "puts the datasets on a machine and labels it for them."
    ),
    Refusal.NOT_ACCREDITED: (
        "You have no researcher accreditation on record, so you cannot start a workspace or submit outputs "
        "for export. Complete the TRE's safe-researcher training, then ask a data steward ({stewards}) to record it."
    ),
    Refusal.ACCREDITATION_EXPIRED: (
        "Your researcher accreditation ended on {date}, so you cannot start a workspace or submit outputs for "
        "export. Renew the safe-researcher training, then ask a data steward ({stewards}) to record it."
    ),
}


def explain(refusal: AccessRefused, language: str) -> str:
    return translate(language, REFUSALS[refusal.reason], **refusal.params)
