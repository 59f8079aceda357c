package kms

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

// alias points a name at a key. UpdateAlias re-points it, which is how a
// key rotation looks to everyone who signs or verifies "alias/NAME".
type alias struct {
	target           string // key ID
	created, updated time.Time
}

var aliasNameRE = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]+$`)

// validAliasName applies AWS's rules and errors: the alias/ prefix (a
// ValidationException) and the reserved alias/aws/ prefix (NotAuthorized).
func validAliasName(name string) *apiError {
	switch {
	case name == "":
		return required("aliasName")
	case !strings.HasPrefix(name, "alias/"):
		return errorf("ValidationException", "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html")
	case strings.HasPrefix(name, "alias/aws/"):
		return errorf("NotAuthorizedException", "Cannot create alias with prefix 'alias/aws/'")
	case len(name) > 256 || !aliasNameRE.MatchString(name):
		return errorf("ValidationException", "1 validation error detected: Value '%s' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9/_-]+$", name)
	}
	return nil
}

func (s *Server) createAlias(body []byte) (any, *apiError) { return s.setAlias(body, true) }
func (s *Server) updateAlias(body []byte) (any, *apiError) { return s.setAlias(body, false) }

// setAlias is CreateAlias (the alias must not exist) and UpdateAlias (it
// must). AWS also requires UpdateAlias's old and new keys to share type and
// usage; every key here is asymmetric SIGN_VERIFY, so that always holds.
func (s *Server) setAlias(body []byte, create bool) (any, *apiError) {
	var in struct{ AliasName, TargetKeyId string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := validAliasName(in.AliasName); err != nil {
		return nil, err
	}
	if in.TargetKeyId == "" {
		return nil, required("targetKeyId")
	}
	if strings.Contains(in.TargetKeyId, "alias/") {
		return nil, errorf("ValidationException", "Aliases must refer to keys. Not aliases")
	}
	k, err := s.resolve(in.TargetKeyId)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, exists := s.aliases[in.AliasName]
	switch {
	case create && exists:
		return nil, errorf("AlreadyExistsException", "An alias with the name %s already exists", s.arn(in.AliasName))
	case !create && !exists:
		return nil, errorf("NotFoundException", "Alias %s is not found.", s.arn(in.AliasName))
	case create:
		s.aliases[in.AliasName] = &alias{target: k.id, created: now, updated: now}
	default:
		s.aliases[in.AliasName] = &alias{target: k.id, created: a.created, updated: now}
	}
	return struct{}{}, nil
}

func (s *Server) deleteAlias(body []byte) (any, *apiError) {
	var in struct{ AliasName string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := validAliasName(in.AliasName); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.aliases[in.AliasName]; !ok {
		return nil, errorf("NotFoundException", "Alias %s is not found.", s.arn(in.AliasName))
	}
	delete(s.aliases, in.AliasName)
	return struct{}{}, nil
}

type aliasEntry struct {
	AliasName, AliasArn, TargetKeyId string
	CreationDate, LastUpdatedDate    float64
}

// listAliases lists aliases sorted by name, optionally only those of one
// key, paged as AWS pages: Limit (1-100, default 50), and an opaque
// NextMarker (here the next alias name) to pass back as Marker.
func (s *Server) listAliases(body []byte) (any, *apiError) {
	var in struct {
		KeyId, Marker string
		Limit         *int
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit := 50
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > 100 {
			return nil, errorf("ValidationException", "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100", *in.Limit)
		}
		limit = *in.Limit
	}
	var only string
	if in.KeyId != "" {
		k, err := s.resolve(in.KeyId)
		if err != nil {
			return nil, err
		}
		only = k.id
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all := []aliasEntry{}
	for name, a := range s.aliases {
		if (only == "" || a.target == only) && name >= in.Marker {
			all = append(all, aliasEntry{
				AliasName: name, AliasArn: s.arn(name), TargetKeyId: a.target,
				CreationDate: epoch(a.created), LastUpdatedDate: epoch(a.updated),
			})
		}
	}
	slices.SortFunc(all, func(a, b aliasEntry) int { return strings.Compare(a.AliasName, b.AliasName) })
	if len(all) <= limit {
		return map[string]any{"Aliases": all, "Truncated": false}, nil
	}
	return map[string]any{"Aliases": all[:limit], "Truncated": true, "NextMarker": all[limit].AliasName}, nil
}
