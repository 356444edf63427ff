//! STS AssumeRoleWithSAML (unsigned): the SAMLResponse a `credd_saml_process`
//! prints, checked the way AWS checks what matters to a client: its
//! `https://aws.amazon.com/SAML/Attributes/Role` attribute names the
//! requested role and IdP (in either order), its `NotOnOrAfter` is in the
//! future of the sandbox clock, and it names a `RoleSessionName`. Its
//! signature is not verified: the sandbox trusts every IdP.
//!
//! The assertion is read with a few string scans rather than an XML crate:
//! the sandbox only needs some elements' text and attributes, whatever the
//! namespace prefix (`saml:`, `saml2:`, none).

use crate::error::ApiError;
use crate::http::xml_escape;
use crate::state::State;
use crate::sts::{
    assumed_role_user_xml, credentials_xml, param, parse_role_arn, role_identity, validation,
};
use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::time::Duration;

const ROLE_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/Role";
const SESSION_NAME_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/RoleSessionName";
const SESSION_DURATION_ATTRIBUTE: &str = "https://aws.amazon.com/SAML/Attributes/SessionDuration";

/// One element: its attribute text (between the name and `>`) and content.
struct Element<'a> {
    attributes: &'a str,
    content: &'a str,
}

impl Element<'_> {
    fn attribute(&self, name: &str) -> Option<&str> {
        let needle = format!("{name}=\"");
        let mut rest = self.attributes;
        // Match whole attribute names only (`Name=` must not hit `FriendlyName=`).
        while let Some(at) = rest.find(&needle) {
            let starts_name = at == 0 || rest.as_bytes()[at - 1].is_ascii_whitespace();
            let value = &rest[at + needle.len()..];
            if starts_name {
                return value.split('"').next();
            }
            rest = value;
        }
        None
    }

    fn text(&self) -> String {
        self.content
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    }
}

/// Every element whose local name is `local`, in document order.
fn elements<'a>(xml: &'a str, local: &str) -> Vec<Element<'a>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = xml[from..].find('<') {
        let start = from + offset + 1;
        from = start;
        let name_end = xml[start..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .map_or(xml.len(), |n| start + n);
        let name = &xml[start..name_end];
        if name.rsplit(':').next() != Some(local) {
            continue;
        }
        let Some(tag_end) = xml[name_end..].find('>').map(|n| name_end + n) else {
            break;
        };
        let attributes = &xml[name_end..tag_end];
        if let Some(attributes) = attributes.strip_suffix('/') {
            found.push(Element {
                attributes,
                content: "",
            });
            continue;
        }
        let close = format!("</{name}>");
        if let Some(end) = xml[tag_end..].find(&close).map(|n| tag_end + n) {
            found.push(Element {
                attributes,
                content: &xml[tag_end + 1..end],
            });
        }
    }
    found
}

/// The values of the `<Attribute Name="name">`s of the assertion.
fn attribute_values(xml: &str, name: &str) -> Vec<String> {
    elements(xml, "Attribute")
        .iter()
        .filter(|a| a.attribute("Name") == Some(name))
        .flat_map(|a| elements(a.content, "AttributeValue"))
        .map(|v| v.text())
        .collect()
}

fn invalid(message: &str) -> ApiError {
    ApiError::sts(400, "InvalidIdentityToken", message)
}

/// `SubjectType` as AWS reports it: the short name of the two common
/// formats, the format URI otherwise.
fn subject_type(format: Option<&str>) -> String {
    match format {
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient") => "transient".to_owned(),
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent") | None => {
            "persistent".to_owned()
        }
        Some(other) => other.to_owned(),
    }
}

pub fn assume_role_with_saml(
    state: &mut State,
    params: &[(String, String)],
) -> Result<String, ApiError> {
    let role_arn = param(params, "RoleArn").ok_or_else(|| validation("RoleArn is required"))?;
    let principal_arn =
        param(params, "PrincipalArn").ok_or_else(|| validation("PrincipalArn is required"))?;
    let assertion =
        param(params, "SAMLAssertion").ok_or_else(|| validation("SAMLAssertion is required"))?;
    let (account, role) = parse_role_arn(role_arn)?;
    let mut lifetime = crate::sts::duration(params, 3600, 43200)?;
    let xml = base64::engine::general_purpose::STANDARD
        .decode(assertion.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| invalid("Invalid base64 SAMLResponse"))?;
    if elements(&xml, "Assertion").is_empty() {
        return Err(invalid("The SAMLResponse holds no assertion"));
    }

    let now = state.now();
    for element in elements(&xml, "SubjectConfirmationData")
        .into_iter()
        .chain(elements(&xml, "Conditions"))
    {
        let Some(text) = element.attribute("NotOnOrAfter") else {
            continue;
        };
        let not_on_or_after =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| invalid("NotOnOrAfter is not a timestamp"))?;
        if not_on_or_after <= now {
            return Err(ApiError::sts(
                400,
                "ExpiredTokenException",
                "Token must be redeemed within 5 minutes of issuance",
            ));
        }
    }

    let pair_listed = attribute_values(&xml, ROLE_ATTRIBUTE).iter().any(|value| {
        let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
        parts.sort_unstable();
        let mut wanted = [role_arn, principal_arn];
        wanted.sort_unstable();
        parts == wanted
    });
    if !pair_listed {
        return Err(ApiError::sts(
            403,
            "AccessDenied",
            format!("Not authorized to perform sts:AssumeRoleWithSAML on {role_arn}"),
        ));
    }
    let session = attribute_values(&xml, SESSION_NAME_ATTRIBUTE)
        .into_iter()
        .next()
        .ok_or_else(|| invalid("The SAML assertion has no RoleSessionName attribute"))?;
    if let Some(max) = attribute_values(&xml, SESSION_DURATION_ATTRIBUTE)
        .first()
        .and_then(|v| v.parse::<u64>().ok())
    {
        lifetime = lifetime.min(Duration::from_secs(max));
    }

    let name_id = elements(&xml, "NameID");
    let subject = name_id.first().map(Element::text).unwrap_or_default();
    let format = name_id.first().and_then(|n| n.attribute("Format"));
    let issuer = elements(&xml, "Issuer")
        .first()
        .map(Element::text)
        .unwrap_or_default();
    let provider = principal_arn.rsplit('/').next().unwrap_or_default();
    // AWS's documented NameQualifier: base64(sha1(issuer + account + "/" + IdP name)).
    let name_qualifier = base64::engine::general_purpose::STANDARD.encode(Sha1::digest(
        format!("{issuer}{account}/{provider}").as_bytes(),
    ));

    let identity = role_identity(&account, &role, &session);
    let credentials = state.issue_key(identity.clone(), lifetime);
    Ok(credentials_xml(&credentials)
        + &assumed_role_user_xml(&identity)
        + &format!(
            "    <Subject>{}</Subject>\n    <SubjectType>{}</SubjectType>\n    <Issuer>{}</Issuer>\n    <Audience>https://signin.aws.amazon.com/saml</Audience>\n    <NameQualifier>{}</NameQualifier>\n",
            xml_escape(&subject),
            xml_escape(&subject_type(format)),
            xml_escape(&issuer),
            xml_escape(&name_qualifier),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_found_whatever_their_prefix() {
        let xml = r#"<saml2:Attribute FriendlyName="x" Name="n"><saml2:AttributeValue>a</saml2:AttributeValue><AttributeValue>b &amp; c</AttributeValue></saml2:Attribute><x:Attribute Name="other"/>"#;
        assert_eq!(attribute_values(xml, "n"), ["a", "b & c"]);
        assert!(attribute_values(xml, "x").is_empty());
        assert_eq!(
            elements(xml, "Attribute")[1].attribute("Name"),
            Some("other")
        );
    }
}
