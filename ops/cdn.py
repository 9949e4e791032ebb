"""What the site's CloudFront distribution, its origin access control and the
site bucket's policy look like; :mod:`ops.provision` makes them so.

The bucket stays private (Block Public Access on): only the distribution,
signing its requests through the origin access control, may read it.
Caching follows the publish layout (:mod:`ops.publish`): everything under
``assets/`` is named by its content and cached for a year; the rest
(``index.html``, ``config.js``, the icon) is not cached, so a publish is
seen at once without an invalidation.
"""
import json

#: AWS managed cache and response-header policies (their ids are fixed).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
SECURITY_HEADERS = "67f7725c-6f97-4210-82d7-5512b31e9d03"
#: Fingerprinted files live under this prefix (see ops.publish).
ASSETS_PATTERN = "assets/*"
ORIGIN_ID = "site-bucket"
#: CloudFront only uses certificates from this region.
CERTIFICATE_REGION = "us-east-1"


def oac_name(stage):
    return f"rollcall-{stage}-site"


def comment(stage):
    return f"Rollcall {stage} site"


def bucket_origin_domain(bucket, region):
    """The bucket's regional REST endpoint (never the website endpoint)."""
    return f"{bucket}.s3.{region}.amazonaws.com"


def _behaviour(cache_policy):
    methods = {"Quantity": 2, "Items": ["GET", "HEAD"]}
    return {
        "TargetOriginId": ORIGIN_ID,
        "ViewerProtocolPolicy": "redirect-to-https",
        "CachePolicyId": cache_policy,
        "ResponseHeadersPolicyId": SECURITY_HEADERS,
        "Compress": True,
        "AllowedMethods": dict(methods, CachedMethods=dict(methods)),
    }


def distribution_config(stage, bucket, region, oac_id, caller_reference,
                        domain="", certificate_arn=""):
    """The whole DistributionConfig for the site (CreateDistribution's argument)."""
    if domain:
        certificate = {"ACMCertificateArn": certificate_arn, "SSLSupportMethod": "sni-only",
                       "MinimumProtocolVersion": "TLSv1.2_2021"}
    else:
        certificate = {"CloudFrontDefaultCertificate": True}
    return {
        "CallerReference": caller_reference,
        "Comment": comment(stage),
        "Enabled": True,
        "DefaultRootObject": "index.html",
        "Origins": {"Quantity": 1, "Items": [{
            "Id": ORIGIN_ID,
            "DomainName": bucket_origin_domain(bucket, region),
            "OriginPath": "",
            "S3OriginConfig": {"OriginAccessIdentity": ""},
            "OriginAccessControlId": oac_id,
        }]},
        "DefaultCacheBehavior": _behaviour(CACHING_DISABLED),
        "CacheBehaviors": {"Quantity": 1, "Items": [
            dict(_behaviour(CACHING_OPTIMIZED), PathPattern=ASSETS_PATTERN)]},
        "Aliases": {"Quantity": 1, "Items": [domain]} if domain else {"Quantity": 0},
        "ViewerCertificate": certificate,
        "PriceClass": "PriceClass_100",
        "HttpVersion": "http2and3",
        "IsIPV6Enabled": True,
    }


def essentials(config):
    """The parts of a DistributionConfig provisioning decides, comparable.

    A field the API does not echo back (moto omits an origin's access
    control id) is left out rather than reported as drift for ever.
    """
    def behaviour(item):
        return (item.get("PathPattern"), item.get("TargetOriginId"),
                item.get("ViewerProtocolPolicy"), item.get("CachePolicyId"),
                item.get("ResponseHeadersPolicyId"))
    origins = []
    for origin in config.get("Origins", {}).get("Items", []):
        entry = {"Id": origin.get("Id"), "DomainName": origin.get("DomainName")}
        if "OriginAccessControlId" in origin:
            entry["OriginAccessControlId"] = origin["OriginAccessControlId"]
        origins.append(entry)
    certificate = config.get("ViewerCertificate", {})
    return {
        "Enabled": config.get("Enabled"),
        "DefaultRootObject": config.get("DefaultRootObject"),
        "Origins": origins,
        "Default": behaviour(config.get("DefaultCacheBehavior", {})),
        "Behaviours": sorted(behaviour(item) for item in
                             config.get("CacheBehaviors", {}).get("Items", []) or []),
        "Aliases": sorted(config.get("Aliases", {}).get("Items", []) or []),
        "Certificate": certificate.get("ACMCertificateArn") or "",
    }


def differs(current, desired):
    """Whether ``current`` lacks something of ``desired`` (see :func:`essentials`)."""
    have, want = essentials(current), essentials(desired)
    for origin_have, origin_want in zip(have["Origins"], want["Origins"]):
        if "OriginAccessControlId" not in origin_have:
            origin_want.pop("OriginAccessControlId", None)
    return have != want


def bucket_policy(bucket, distribution_arn):
    """Only this distribution may read the site's objects."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "OnlyTheSiteDistributionReads",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
    }]}


def same_policy(text, wanted):
    try:
        return json.loads(text) == wanted
    except (TypeError, ValueError):
        return False


def certificate_covers(certificate, domain):
    """Whether an ACM certificate (DescribeCertificate's) names ``domain``."""
    names = {certificate.get("DomainName", "")} | set(
        certificate.get("SubjectAlternativeNames", []))
    domain = domain.lower()
    for name in (n.lower() for n in names if n):
        if name == domain:
            return True
        if name.startswith("*.") and domain.count(".") == name.count(".") \
                and domain.split(".", 1)[1] == name[2:]:
            return True
    return False
